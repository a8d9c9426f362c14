"""Helpers shared by the catalog tests and ``bench/bench_language.py``: turning a
catalog entry into callables, comparing two Pyro models site by site, and building the
suggested guide / ELBO / optimizer with plain Pyro.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import catalog_reference_models as reference
import pyro
import pyro.infer
import pyro.infer.autoguide
import pyro.optim
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

CATALOG_MODELS_DIR = (
    Path(__file__).resolve().parents[3] / "inference" / "catalog" / "models"
)


def load_plain_python(name: str, entry: str) -> Callable:
    """The catalog source run as an ordinary Python module (our own trusted package
    file, not user text): shows the catalog text is genuine Pyro."""
    path = CATALOG_MODELS_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_catalog_plain_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, entry)


def sync_reference_modules(module_names: list[str]) -> None:
    """Copy the weights that the model under test registered with ``pyro.module`` into
    the reference model's networks, so both compute with the same weights."""
    store = pyro.get_param_store()
    for module_name in module_names:
        network = reference.MODULES[module_name]
        with torch.no_grad():
            for param_name, value in network.named_parameters():
                value.copy_(store[f"{module_name}$$${param_name}"])


def trace_pair(
    candidate: Callable, native: Callable, kwargs: dict[str, Any], seed: int = 0
):
    """Trace ``candidate`` with a fixed seed, then ``native`` replayed on its latent
    values; both traces with log-probs computed."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    candidate_trace = poutine.trace(candidate).get_trace(**kwargs)
    module_names = sorted(
        {
            n.split("$$$")[0]
            for n, s in candidate_trace.nodes.items()
            if s["type"] == "param" and "$$$" in n
        }
    )
    sync_reference_modules(module_names)
    native_trace = poutine.trace(
        poutine.replay(native, trace=candidate_trace)
    ).get_trace(**kwargs)
    candidate_trace.compute_log_prob()
    native_trace.compute_log_prob()
    return candidate_trace, native_trace


def _sites(trace) -> dict[str, dict]:
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] in ("sample", "param")
    }


def assert_same_traces(candidate_trace, native_trace, *, rtol=1e-6, atol=1e-5) -> None:
    """Same site names, types, observedness, distribution shapes, values and log-probs."""
    candidate_sites, native_sites = _sites(candidate_trace), _sites(native_trace)
    assert list(candidate_sites) == list(native_sites), "site names or order differ"
    for name, site in candidate_sites.items():
        other = native_sites[name]
        assert site["type"] == other["type"], name
        value, other_value = (
            torch.as_tensor(site["value"]),
            torch.as_tensor(other["value"]),
        )
        assert value.shape == other_value.shape, (name, value.shape, other_value.shape)
        torch.testing.assert_close(
            value.float(),
            other_value.float(),
            rtol=rtol,
            atol=atol,
            msg=lambda m, name=name: f"site {name}: {m}",
        )
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        assert site["is_observed"] == other["is_observed"], name
        assert type(site["fn"]) is type(other["fn"]), (name, site["fn"], other["fn"])
        assert site["fn"].batch_shape == other["fn"].batch_shape, name
        assert site["fn"].event_shape == other["fn"].event_shape, name
        assert site["infer"].get("enumerate") == other["infer"].get("enumerate"), name
        assert [f.name for f in site["cond_indep_stack"]] == [
            f.name for f in other["cond_indep_stack"]
        ], name
        torch.testing.assert_close(
            site["log_prob"],
            other["log_prob"],
            rtol=rtol,
            atol=atol,
            msg=lambda m, name=name: f"site {name}: {m}",
        )
    total, other_total = candidate_trace.log_prob_sum(), native_trace.log_prob_sum()
    assert math.isfinite(float(total.detach()))
    torch.testing.assert_close(total, other_total, rtol=rtol, atol=atol)


def enumerated_comparison(
    candidate: Callable,
    native: Callable,
    kwargs: dict[str, Any],
    max_plate_nesting: int,
    expose: list[str],
):
    """``TraceEnum_ELBO`` losses of both models under one AutoDelta guide (built on the
    native model, hence the same parameter values for both), and both models' traces
    under ``poutine.enum`` replayed on that guide's draw."""
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = pyro.infer.autoguide.AutoDelta(
        poutine.block(native, expose=expose),
        init_loc_fn=pyro.infer.autoguide.init_to_sample,
    )
    guide(**kwargs)  # creates the parameters
    elbo = pyro.infer.TraceEnum_ELBO(max_plate_nesting=max_plate_nesting)
    losses = [
        float(elbo.differentiable_loss(m, guide, **kwargs).detach())
        for m in (candidate, native)
    ]

    guide_trace = poutine.trace(guide).get_trace(**kwargs)
    traces = []
    for model in (candidate, native):
        enumerated = poutine.enum(model, first_available_dim=-1 - max_plate_nesting)
        trace = poutine.trace(poutine.replay(enumerated, trace=guide_trace)).get_trace(
            **kwargs
        )
        trace.compute_log_prob()
        traces.append(trace)
    return losses, traces


def suggested_svi(
    suggested: dict[str, Any], model: Callable, custom_guide: Callable | None = None
):
    """A plain ``pyro.infer.SVI`` built from a catalog entry's ``suggested`` settings."""
    inference = suggested["inference"]
    guide_spec = suggested["guide"]
    if "auto" in guide_spec:
        guide_model = model
        if guide_spec.get("hide") or guide_spec.get("expose"):
            guide_model = poutine.block(
                model, hide=guide_spec.get("hide"), expose=guide_spec.get("expose")
            )
        guide_class = getattr(pyro.infer.autoguide, guide_spec["auto"])
        options = dict(guide_spec.get("options", {}))
        if isinstance(options.get("init_loc_fn"), str):
            options["init_loc_fn"] = getattr(
                pyro.infer.autoguide.initialization, options["init_loc_fn"]
            )
        guide = guide_class(guide_model, **options)
    else:
        assert custom_guide is not None, "this entry suggests a source guide"
        guide = custom_guide
    elbo_options = dict(inference["elbo"])
    elbo = getattr(pyro.infer, elbo_options.pop("name"))(**elbo_options)
    optimizer_options = dict(inference["optimizer"])
    optimizer = getattr(pyro.optim, optimizer_options.pop("name"))(optimizer_options)
    return pyro.infer.SVI(model, guide, optimizer, loss=elbo)
