"""Steps/s and time to an accurate posterior: vihub's engine against a bare Pyro loop, in one run.

Variants (all AutoNormal + Trace_ELBO + Adam at the catalog's suggested learning rate):

- ``bare``: the loop a Pyro user writes — validation on (Pyro's default), no JIT,
  ``svi.step(**data)`` per iteration appending the loss, on the hand-written Python model;
- ``pyro-path``: ``run_svi`` with ``fast_path: false`` (vihub's default before the fast path);
- ``jit``: ``run_svi`` with ``jit: "auto"``, ``fast_path: false`` (Pyro's JIT ELBO);
- ``default``: ``run_svi`` with the defaults (fast path, automatic particles);
- ``inductor`` (``--inductor``): the fast path compiled by Inductor (~15 s to compile);
- ``numpyro``: ``numpyro.infer.SVI`` with its AutoNormal, when numpyro is importable
  (optional: the ``bench`` extra, ``pip install numpyro jax``; never a runtime dependency of vihub).

Figures:

- ``steps/s``: steady rate after setup/compilation (median over the progress intervals;
  bare: the loop alone), and ``call/s``: steps over the whole call's wall time, setup and
  compilation included, for a fixed number of steps (``stop: "steps"``);
- ``t-acc``: time to an accurate posterior — every posterior mean within 0.2 reference sd
  and every sd within 20% of the reference's, checked every 100 steps on 4,000 guide draws
  with the clock stopped during the check; setup and compilation count. The reference is
  a long fast-path fit: 32 particles (8 for large data), ``--ref-steps`` steps (half for
  large data) at the suggested rate, then 6 x 500 steps halving it each time.
  ``default`` also prints where its own ``stop: "auto"`` ended and whether it was accurate
  there — what a user of the defaults gets.

Ratios are against ``bare`` measured in the same run. The machine is shared: rates are
best of ``--repeat`` interleaved runs.

    python bench/bench_engine.py [--only eight_schools,logistic_10000x20,gmm_enumerated,garch,...]
        [--repeat 2] [--inductor] [--budget-s 20]

Cases: eight schools (non-centred), logistic regression 10,000 x 20, the enumerated GMM
(not on the fast path) and every other catalog model the fast path accepts, by catalog
name, with the catalog's suggested guide, ELBO and rate on its example data. A summary
table at the end puts the default against bare Pyro and against Pyro's path.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import pyro
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.poutine.util import prune_subsample_sites

from inference import catalog
from inference.engine.elbos import infer_max_plate_nesting
from inference.engine.guides import build_guide
from inference.engine.errors import FitCancelled
from inference.engine.loop import FitCallbacks, run_svi
from inference.language import bind_data, compile_source
from inference.spec import AutoGuideSpec, ElboSpec, InferenceSpec, OptimizerSpec


# ---------------------------------------------------------------- plain-Python models
# The catalog's model files imported as plain Python (tests/models.py): the bare loop runs
# the same text the engine runs compiled.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from models import data as native_data, native  # noqa: E402

eight_schools = native("eight_schools_noncentered")
logistic = native("logistic_regression")
gmm = native("gaussian_mixture")


def logistic_data(n=10_000, d=20, seed=0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, d))
    y = (g.random(n) < 1 / (1 + np.exp(-(X @ g.normal(size=d) * 0.5)))).astype(np.float64)
    return {"X": X, "y": y}


CASES = {
    # name: (catalog name, python model, data fn, guide spec, elbo, lr, steps for rates, accuracy?)
    "eight_schools": ("eight_schools_noncentered", eight_schools, None, AutoGuideSpec(auto="AutoNormal"),
                      "Trace_ELBO", 0.05, 2000, True),
    "logistic_10000x20": ("logistic_regression", logistic, logistic_data, AutoGuideSpec(auto="AutoNormal"),
                          "Trace_ELBO", 0.05, 300, True),
    "gmm_enumerated": ("gaussian_mixture", gmm, None,
                       AutoGuideSpec(auto="AutoDelta", expose=["weights", "locs", "scales"]),
                       "TraceEnum_ELBO", 0.01, 300, False),
}



def _catalog_cases() -> dict[str, tuple]:
    """Every other catalog model the fast path accepts (an autoguide without hide/expose),
    with the catalog's suggested guide, ELBO and rate, on its example data."""
    covered = {"eight_schools_noncentered"}
    out = {}
    for cat_name in catalog.names():
        suggested = catalog.get(cat_name).suggested
        guide = suggested.get("guide", {})
        if cat_name in covered or "auto" not in guide or guide.get("expose") or guide.get("hide"):
            continue
        inference = suggested.get("inference", {})
        out[cat_name] = (cat_name, native(cat_name), None, AutoGuideSpec(**guide),
                         inference.get("elbo", {}).get("name", "Trace_ELBO"),
                         inference.get("optimizer", {}).get("lr", 0.01), 1000, True)
    return out


CASES.update(_catalog_cases())
CHECK_EVERY = 100
DRAWS = 4000


def _tensors(data):
    return {k: torch.as_tensor(v, dtype=torch.float32) if isinstance(v, np.ndarray) else v
            for k, v in data.items()}


# ---------------------------------------------------------------- accuracy
def guide_moments(guide: Callable, data: dict, mpn: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and sd of each latent site (constrained) over DRAWS vectorised guide draws."""
    rng = torch.get_rng_state()
    try:
        with torch.no_grad(), poutine.block(), pyro.plate("_bench_draws", DRAWS, dim=-mpn - 1):
            trace = prune_subsample_sites(poutine.trace(guide).get_trace(**data))
    finally:
        torch.set_rng_state(rng)
    out = {}
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site["infer"].get("is_auxiliary") and not name.startswith("_"):
            v = site["value"].reshape(DRAWS, -1).double().numpy()
            out[name] = (v.mean(0), v.std(0))
    return out


def accurate(moments, reference) -> bool:
    for name, (ref_mean, ref_sd) in reference.items():
        mean, sd = moments[name]
        if np.any(np.abs(mean - ref_mean) > 0.2 * ref_sd) or np.any(np.abs(sd / ref_sd - 1) > 0.2):
            return False
    return True


class Clock:
    """Wall time with the accuracy checks taken out."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.paused = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def pause(self) -> "Clock":
        self._p = time.perf_counter()
        return self

    def __enter__(self):
        return self.pause()

    def __exit__(self, *exc) -> None:
        self.paused += time.perf_counter() - self._p


# ---------------------------------------------------------------- variants
def bare(model, guide_spec, elbo_name, data, steps, lr, reference=None, mpn=1, budget_s=20.0):
    """(steady steps/s, whole-call steps/s, time to accuracy or None)."""
    pyro.enable_validation(True)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    try:
        # the Pyro autoguide with the spec's options (init_loc_fn ...), as a user writes it
        guide = (build_guide(guide_spec, model) if guide_spec.auto == "AutoNormal"
                 else AutoDelta(poutine.block(model, expose=guide_spec.expose)))
        elbo = TraceEnum_ELBO(max_plate_nesting=1) if elbo_name == "TraceEnum_ELBO" else Trace_ELBO()
        svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), elbo)
        losses, clock, t_acc, step = [], Clock(), None, 0
        while True:
            losses.append(svi.step(**data))
            step += 1
            if reference is None:
                if step == steps:
                    break
            elif step % CHECK_EVERY == 0:
                with clock:
                    ok = accurate(guide_moments(guide, data, mpn), reference)
                if ok or clock.now() > budget_s:
                    t_acc = clock.now() if ok else None
                    break
        rate = step / clock.now()
        return rate, rate, t_acc
    finally:
        pyro.enable_validation(False)


def engine(model, guide_spec, elbo_name, data, steps, lr, reference=None, mpn=1, budget_s=20.0,
           until_accurate=True, **inference):
    """(steady steps/s, whole-call steps/s, time to accuracy or None, run). With a
    ``reference``, runs until accurate (or the budget is spent) when ``until_accurate``,
    else until its own stop rule, recording when it was first accurate."""
    pyro.clear_param_store()
    guide = build_guide(guide_spec, model)
    spec = InferenceSpec(elbo=ElboSpec(name=elbo_name), optimizer=OptimizerSpec(lr=lr), steps=steps,
                         progress_every_s=1e9, progress_every_steps=CHECK_EVERY, **inference)
    rates = []
    clock = Clock()
    found: dict[str, Any] = {}

    def check(step: int):
        with clock:
            ok = accurate(guide_moments(guide, data, mpn), reference)
        if ok and "t" not in found:
            found["t"] = clock.now()
        return ok

    hooks = {"accuracy": (CHECK_EVERY, check)} if reference is not None else {}

    def should_cancel() -> bool:
        return reference is not None and (("t" in found and until_accurate) or clock.now() > budget_s)

    try:
        run = run_svi(model, guide, data, spec, hooks=hooks,
                      callbacks=FitCallbacks(on_progress=lambda p: rates.append(p.steps_per_s),
                                             should_cancel=should_cancel))
        steps_done = run.steps_done
    except FitCancelled as e:
        run, steps_done = None, e.step
    whole = steps_done / clock.now()
    steady = statistics.median(rates[1:]) if len(rates) > 2 else whole
    return steady, whole, found.get("t"), run


def numpyro_variant(case: str, raw: dict, steps: int, lr: float, reference=None, budget_s=20.0):
    """NumPyro's SVI on the same model (optional; None when numpyro is not importable):
    its AutoNormal, Trace_ELBO (1 particle), Adam at the same rate, float32 on CPU, run the
    way ``svi.run`` runs it — steps inside one compiled loop (``lax.scan``), here
    ``CHECK_EVERY`` steps per call so the same accuracy checks can be made between calls.
    Every call builds a fresh SVI, so its clock includes ``svi.init`` and JAX's compilation,
    as a user waits for them. (steady steps/s, whole-call steps/s, time to accuracy or None)."""
    try:
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as nd
        from numpyro.infer import SVI as NSVI, Trace_ELBO as NTrace
        from numpyro.infer.autoguide import AutoNormal as NAutoNormal
    except ImportError:
        return None
    if case == "eight_schools":
        def model(J, sigma, y=None):
            mu = numpyro.sample("mu", nd.Normal(0.0, 5.0))
            tau = numpyro.sample("tau", nd.HalfCauchy(5.0))
            with numpyro.plate("schools", J):
                theta_tilde = numpyro.sample("theta_tilde", nd.Normal(0.0, 1.0))
                theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
                numpyro.sample("obs", nd.Normal(theta, sigma), obs=y)
    elif case == "logistic_10000x20":
        def model(X, y=None):
            alpha = numpyro.sample("alpha", nd.Normal(0.0, 2.5))
            with numpyro.plate("features", X.shape[1]):
                beta = numpyro.sample("beta", nd.Normal(0.0, 2.5))
            with numpyro.plate("data", X.shape[0]):
                numpyro.sample("y", nd.Bernoulli(logits=alpha + X @ beta), obs=y)
    else:
        return None
    # Data are closed over, not passed through jit: plate sizes (J) must stay static.
    data = {k: jnp.asarray(v, dtype=jnp.float32) if isinstance(v, np.ndarray) else v for k, v in raw.items()}

    def build():
        guide = NAutoNormal(model)
        svi = NSVI(model, guide, numpyro.optim.Adam(lr), NTrace())

        def chunk(state):
            return jax.lax.scan(lambda s, _: svi.update(s, **data), state, None, length=CHECK_EVERY)

        return guide, svi, jax.jit(chunk)

    # rates: a fixed number of steps (rounded up to whole chunks); the first chunk compiles
    n_chunks = max(2, -(-steps // CHECK_EVERY))
    t0 = time.perf_counter()
    guide, svi, run = build()
    state = svi.init(jax.random.PRNGKey(0), **data)
    state, losses = run(state)
    jax.block_until_ready(losses)
    t1 = time.perf_counter()
    for _ in range(n_chunks - 1):
        state, losses = run(state)
    jax.block_until_ready(losses)
    t2 = time.perf_counter()
    steady = (n_chunks - 1) * CHECK_EVERY / (t2 - t1)
    whole = n_chunks * CHECK_EVERY / (t2 - t0)
    t_acc = None
    if reference is not None:
        clock, key = Clock(), jax.random.PRNGKey(1)
        guide, svi, run = build()  # fresh: init and compilation count again
        state = svi.init(jax.random.PRNGKey(0), **data)
        while True:
            state, losses = run(state)
            jax.block_until_ready(losses)
            with clock:
                key, sub = jax.random.split(key)
                draws = guide.sample_posterior(sub, svi.get_params(state), sample_shape=(DRAWS,))
                moments = {}
                for k in reference:
                    v = np.asarray(draws[k], dtype=np.float64).reshape(DRAWS, -1)
                    moments[k] = (v.mean(0), v.std(0))
                ok = accurate(moments, reference)
            if ok or clock.now() > budget_s:
                t_acc = clock.now() if ok else None
                break
    return steady, whole, t_acc


def reference_fit(program, guide_spec, elbo_name, data, lr, steps, particles=32):
    """A long fast-path fit: ``steps`` at ``lr`` with 32 particles, then 6 x 500 steps,
    halving the rate each time (Adam's jitter at a constant rate would blur the sds)."""
    from inference.engine.fastpath import FastTrainer, plan

    pyro.clear_param_store()
    pyro.set_rng_seed(1)
    guide = build_guide(guide_spec, program)
    spec = InferenceSpec(elbo=ElboSpec(name=elbo_name, num_particles=particles), optimizer=OptimizerSpec(lr=lr))
    with poutine.block():
        gt = poutine.trace(guide).get_trace(**data)
        mt = poutine.trace(poutine.replay(program, trace=gt)).get_trace(**data)
    problem, report = plan(spec, guide, program, (), data, data, 1, mt, gt)
    assert report.taken, report.reason
    if not report.vectorized:  # particles one after another in one graph: K times the graph
        particles, steps = 1, 2 * steps
    trainer = FastTrainer(problem, spec, particles, report.vectorized, report)
    trainer.run(steps)
    for _ in range(6):
        trainer.scale_lr(0.5)
        trainer.run(500)
    trainer.sync()
    return guide, steps + 3000, particles


# ---------------------------------------------------------------- main
def _fmt(x, base=None):
    if x is None:
        return f"{'—':>8s}" + ("" if base is None else f" {'':>6s}")
    s = f"{x:8.1f}"
    return s if base is None else s + f" {x / base:5.1f}x"


def _fmt_t(t, base=None):
    if t is None:
        return f"{'not reached':>15s}"
    return f"{t:7.2f}s" + (f" {base / t:5.1f}x" if base else f" {'':6s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated case names")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repeats of the rate runs; best kept")
    parser.add_argument("--inductor", action="store_true", help="also the Inductor-compiled fast path (slow compile)")
    parser.add_argument("--budget-s", type=float, default=20.0, help="time cap for reaching accuracy")
    parser.add_argument("--ref-steps", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the engine uses one thread for small data; the same for everyone
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, 1 thread; checks every {CHECK_EVERY} steps "
          f"on {DRAWS} draws, clock stopped during checks")
    summary = []
    for name, (cat_name, py_model, data_fn, guide_spec, elbo_name, lr, steps, with_acc) in CASES.items():
        if args.only and name not in args.only.split(","):
            continue
        entry = catalog.get(cat_name)
        raw = data_fn() if data_fn else entry.example_data
        program = compile_source(entry.source, entry.entry)
        lang = bind_data(program, raw).kwargs
        py = _tensors(raw) if data_fn else native_data(cat_name)
        variants: dict[str, Callable] = {
            "bare": lambda n, **kw: bare(py_model, guide_spec, elbo_name, py, n, lr, **kw),
            "pyro-path": lambda n, **kw: engine(program, guide_spec, elbo_name, lang, n, lr, fast_path=False,
                                                stop="steps", **kw)[:3],
            "jit": lambda n, **kw: engine(program, guide_spec, elbo_name, lang, n, lr, fast_path=False,
                                          jit="auto", stop="steps", **kw)[:3],
            "default": lambda n, **kw: engine(program, guide_spec, elbo_name, lang, n, lr, stop="steps", **kw)[:3],
        }
        if args.inductor:
            variants["inductor"] = lambda n, **kw: engine(program, guide_spec, elbo_name, lang, n, lr, stop="steps",
                                                          fast_path_compiler="inductor", **kw)[:3]
        for fn in variants.values():
            fn(20)  # warm up caches, thread pools, the FX graph cache
        best = {k: (0.0, 0.0) for k in variants}
        for _ in range(args.repeat):
            for key, fn in variants.items():
                steady, whole, _ = fn(steps)
                best[key] = (max(best[key][0], steady), max(best[key][1], whole))
        print(f"\n== {name} ({cat_name}, {guide_spec.auto}, {elbo_name}, lr {lr}; rates over {steps} steps)")
        base_steady, base_whole = best["bare"]
        np_result = None
        for _ in range(args.repeat if with_acc else 0):  # best of --repeat, like the others
            r = numpyro_variant(name, raw, steps, lr)
            if r is None:
                break
            np_result = r if np_result is None else (max(np_result[0], r[0]), max(np_result[1], r[1]))
        print(f"{'variant':12s} {'steps/s':>8s} {'ratio':>6s} {'call/s':>8s} {'ratio':>6s}")
        for key, (steady, whole) in best.items():
            print(f"{key:12s} {_fmt(steady, base_steady)} {_fmt(whole, base_whole)}")
        if np_result is not None:
            print(f"{'numpyro':12s} {_fmt(np_result[0], base_steady)} {_fmt(np_result[1], base_whole)}")
        else:
            import importlib.util

            if importlib.util.find_spec("numpyro") is None:
                print("numpyro      not importable (optional bench extra: pip install numpyro jax)")
            else:
                print("numpyro      (no NumPyro version of this model in the bench)")
        if not with_acc:
            continue

        pyro.clear_param_store()
        mpn = max(1, infer_max_plate_nesting(program, build_guide(guide_spec, program), lang))
        t = time.perf_counter()
        elements = sum(v.numel() for v in lang.values() if torch.is_tensor(v))
        ref_particles = 32 if elements < 10_000 else 8  # keeps the reference under ~30 s here
        ref_steps_1 = args.ref_steps if elements < 10_000 else args.ref_steps // 2
        ref_guide, ref_steps, ref_particles = reference_fit(program, guide_spec, elbo_name, lang, lr, ref_steps_1,
                                                            ref_particles)
        reference = guide_moments(ref_guide, lang, mpn)
        print(f"reference: {ref_steps} fast-path steps, {ref_particles} particles, lr {lr} then halved 6 times, "
              f"{time.perf_counter() - t:.1f}s")
        times = {}
        for key, fn in variants.items():
            times[key] = fn(10**7, reference=reference, mpn=mpn, budget_s=args.budget_s)[2]
        # the defaults as a user gets them: stop "auto" (capped at 20,000 steps)
        _, _, _, run = engine(program, guide_spec, elbo_name, lang, 20_000, lr, reference=reference, mpn=mpn,
                              budget_s=1e9, until_accurate=False)
        end_ok = accurate(guide_moments(run.guide, lang, mpn), reference)
        if np_result is not None:
            times["numpyro"] = numpyro_variant(name, raw, steps, lr, reference=reference,
                                               budget_s=args.budget_s)[2]
        print(f"{'variant':12s} {'t-acc':>8s} {'speed-up':>6s}")
        for key, t_acc in times.items():
            print(f"{key:12s} {_fmt_t(t_acc, times['bare'])}")
        print(f"defaults (stop 'auto'): ended at step {run.steps_done} ({run.stop['reason']}) after "
              f"{run.wall_s:.2f}s incl. checks, {run.fast_path['particles']} particles: accurate there: {end_ok}")
        summary.append((name, best["default"][0] / base_steady, best["default"][0] / best["pyro-path"][0],
                        times["bare"], times["default"], end_ok))
    if summary:
        print("\n== summary: the default (fast path) against the bare Pyro loop and against Pyro's path "
              "(vihub's default before the fast path)")
        print(f"{'case':26s} {'steps/s vs bare':>15s} {'vs pyro-path':>12s} {'t-acc bare':>10s} "
              f"{'t-acc default':>13s} {'stop auto accurate':>18s}")
        for name, vs_bare, vs_pyro, t_bare, t_default, end_ok in summary:
            t_b = f"{t_bare:.2f}s" if t_bare is not None else "not reached"
            t_d = f"{t_default:.2f}s" if t_default is not None else "not reached"
            print(f"{name:26s} {vs_bare:14.1f}x {vs_pyro:11.1f}x {t_b:>10s} {t_d:>13s} {str(end_ok):>18s}")


if __name__ == "__main__":
    main()
