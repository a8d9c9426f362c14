"""Steps/s of vihub's run loop against the loop a Pyro user writes, measured in one run.

Baseline ("bare"): Pyro validation on (Pyro's default), no JIT, ``svi.step(**data)`` per
iteration appending the returned loss to a Python list, on the plain-Python model (the
catalog's model file imported as Python).

Engine: ``inference.engine.loop.run_svi`` on the catalog model compiled by the model
language (what a job runs), with the default spec and with ``jit: "auto"``; and the same
on the plain-Python model ("engine/python"), to separate the language's cost.
Every figure is wall time of the whole call (setup, JIT compile and trial included) over
the steps done; ratios are engine steps/s over bare steps/s.

    python bench/bench_engine.py [--steps-scale 1.0] [--threads N] [--repeat 2] [--only eight_schools]

Each variant is warmed up (10 steps) and then timed ``--repeat`` times, interleaved; the
best rate of each is kept (the dev machines are shared, so the slowest runs are noise).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import pyro
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta, AutoNormal

from inference import catalog
from inference.engine.guides import build_guide
from inference.engine.loop import run_svi
from inference.language import bind_data, compile_source
from inference.spec import AutoGuideSpec, ElboSpec, InferenceSpec, OptimizerSpec


# ---------------------------------------------------------------- plain-Python models
# The catalog's model files imported as plain Python (tests/models.py): the same text the
# engine runs compiled, so engine/python vs engine separates the language's cost.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from models import native  # noqa: E402

eight_schools = native("eight_schools_noncentered")
logistic = native("logistic_regression")
gmm = native("gaussian_mixture")


def logistic_data(n=10_000, d=20, seed=0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d))
    y = (g.random(n) < 1 / (1 + np.exp(-(X @ g.normal(size=d) * 0.5)))).astype(np.float64)
    return {"X": X, "y": y}


CASES = {
    # name: (catalog name, python model, data fn, guide spec, elbo spec, steps)
    "eight_schools": ("eight_schools_noncentered", eight_schools, None,
                      AutoGuideSpec(auto="AutoNormal"), ElboSpec(name="Trace_ELBO"), 1500),
    "logistic_10000x20": ("logistic_regression", logistic, logistic_data,
                          AutoGuideSpec(auto="AutoNormal"), ElboSpec(name="Trace_ELBO"), 300),
    "gmm_enumerated": ("gaussian_mixture", gmm, None,
                       AutoGuideSpec(auto="AutoDelta", expose=["weights", "locs", "scales"]),
                       ElboSpec(name="TraceEnum_ELBO"), 400),
}


def _tensors(data):
    return {k: torch.as_tensor(v, dtype=torch.float32) if isinstance(v, np.ndarray) else v
            for k, v in data.items()}


def bare(model, guide_spec, elbo_spec, data, steps):
    pyro.enable_validation(True)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = (AutoNormal(model) if guide_spec.auto == "AutoNormal"
             else AutoDelta(pyro.poutine.block(model, expose=guide_spec.expose)))
    elbo = TraceEnum_ELBO(max_plate_nesting=1) if elbo_spec.name == "TraceEnum_ELBO" else Trace_ELBO()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), elbo)
    losses = []
    t0 = time.perf_counter()
    for _ in range(steps):
        losses.append(svi.step(**data))
    return steps / (time.perf_counter() - t0)


def engine(model, guide_spec, elbo_spec, data, steps, jit):
    guide = build_guide(guide_spec, model)
    spec = InferenceSpec(elbo=elbo_spec, optimizer=OptimizerSpec(lr=0.01), steps=steps, jit=jit)
    t0 = time.perf_counter()
    run = run_svi(model, guide, data, spec)
    rate = run.steps_done / (time.perf_counter() - t0)
    pyro.clear_param_store()
    return rate, run.jit_used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps-scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--only", default=None, help="comma-separated case names")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repeats; the best is kept")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, threads {torch.get_num_threads()}")
    print(f"{'case':20s} {'bare/s':>9s} {'engine/s':>9s} {'ratio':>6s} {'jit-auto/s':>10s} {'ratio':>6s} "
          f"{'py-engine/s':>11s} {'ratio':>6s} {'py-jit/s':>9s} {'ratio':>6s}")
    for name, (cat_name, py_model, data_fn, guide_spec, elbo_spec, steps) in CASES.items():
        if args.only and name not in args.only.split(","):
            continue
        steps = max(20, int(steps * args.steps_scale))
        entry = catalog.get(cat_name)
        raw = data_fn() if data_fn else entry.example_data
        program = compile_source(entry.source, entry.entry)
        lang_data = bind_data(program, raw).kwargs
        py_data = _tensors(raw)
        variants = {
            "bare": lambda n: (bare(py_model, guide_spec, elbo_spec, py_data, n), True),
            "engine": lambda n: engine(program, guide_spec, elbo_spec, lang_data, n, False),
            "jit": lambda n: engine(program, guide_spec, elbo_spec, lang_data, n, "auto"),
            "py_engine": lambda n: engine(py_model, guide_spec, elbo_spec, py_data, n, False),
            "py_jit": lambda n: engine(py_model, guide_spec, elbo_spec, py_data, n, "auto"),
        }
        for fn in variants.values():  # warm up torch/pyro caches and thread pools
            fn(10)
        best = {k: 0.0 for k in variants}
        used = {}
        for _ in range(args.repeat):  # interleaved, best of: the machine may be shared
            for key, fn in variants.items():
                rate, used[key] = fn(steps)
                best[key] = max(best[key], rate)
        b, e, j, pe, pj = (best[k] for k in ("bare", "engine", "jit", "py_engine", "py_jit"))
        j_used, pj_used = used["jit"], used["py_jit"]
        print(f"{name:20s} {b:9.1f} {e:9.1f} {e / b:6.2f} {j:10.1f} {j / b:6.2f}{'' if j_used else '*'}"
              f" {pe:11.1f} {pe / b:6.2f} {pj:9.1f} {pj / b:6.2f}{'' if pj_used else '*'}")
    print("(* = jit 'auto' fell back to no JIT; figures include setup and JIT compilation)")


if __name__ == "__main__":
    main()
