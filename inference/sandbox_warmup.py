"""Warm-up of a sandbox forkserver: imported once, as the last module it preloads.

A fresh process pays first-call costs that a long-lived one pays once: lazily built
caches in torch's dispatcher, Pyro's handlers, xarray and h5netcdf (measured: a 1-step
fit plus its result files took ~0.30 s in a fresh child against ~0.15 s in a warm
process). Running one tiny catalog fit here, before any child is forked, makes every
child start warm.

It runs with ONE torch thread: at one thread torch and MKL run inline and never start
GNU OpenMP's thread pool, which does not survive fork (a child using two threads after
its parent started the pool hangs). ``THREADS`` keeps the count the process started with;
``inference.sandbox`` gives it back to each child. Nothing here may raise: a failed
warm-up only means slower children.
"""

from __future__ import annotations

import gc
import logging

import torch

log = logging.getLogger("vihub.sandbox")

THREADS = torch.get_num_threads()


def _warm_up() -> None:
    torch.set_num_threads(1)
    try:
        import inference.catalog as catalog
        from inference import fit, predict, validate

        entry = catalog.get("eight_schools_noncentered")
        spec = {"model": {"catalog": entry.name}, "guide": {"auto": "AutoNormal"},
                "inference": {"steps": 2, "seed": 0}, "outputs": {"num_samples": 5, "log_prob_draws": 5}}
        validate(spec, entry.example_data)
        result = fit(spec, entry.example_data)
        result.to_json()
        result.samples_npz()
        result.params_safetensors()
        result.log_probs_npz()
        result.param_store_pt()
        result.to_netcdf()
        predict(result, spec, entry.example_data, 2)
    except Exception:  # noqa: BLE001 - see the module docstring
        log.warning("sandbox forkserver warm-up failed; children start cold", exc_info=True)


_warm_up()
# Objects that exist now are never collected in a child: its collector then does not
# walk (and copy-on-write) the whole pre-warmed heap.
gc.collect()
gc.freeze()
