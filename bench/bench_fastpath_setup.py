"""Fast-path setup cost against model size: how recording and ``simplify`` grow with the
number of latent sites of a loop-written time series (``x_t ~ Normal(0.9 x_{t-1}, 1)``).

Prints, per T: seconds spent in ``graph_passes.record`` and ``graph_passes.simplify``
during a 1-step ``fit`` (fast path), whether the graph compiled, and the ratio of each
time to the smallest T's. Linear growth doubles the time when T doubles; the ratios show
what it does instead (``_fresh_attr``'s scan makes constant folding quadratic, and from
~250 sites ``simplify`` ends in RecursionError and the job runs eager anyway; see
``tests/inference/engine/test_fastpath_outsider.py``).

    PYTHONPATH=. python bench/bench_fastpath_setup.py [T ...]   # default: 50 100 200
"""

from __future__ import annotations

import sys
import time
import warnings

import torch

import inference.engine.fastpath as fastpath
from inference import fit

SOURCE = '''
def model(y):
    x = 0.0
    for t in range(len(y)):
        x = pyro.sample(f"x_{t}", dist.Normal(0.9 * x, 1.0))
        pyro.sample(f"y_{t}", dist.Normal(x, 0.5), obs=y[t])
'''


def timed(fn, key, timings):
    def wrapper(*args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0
    return wrapper


def measure(t: int) -> dict:
    timings: dict = {}
    record, simplify = fastpath.record, fastpath.simplify
    fastpath.record, fastpath.simplify = timed(record, "record", timings), timed(simplify, "simplify", timings)
    try:
        torch.manual_seed(0)
        spec = {"model": {"source": SOURCE}, "guide": {"auto": "AutoNormal"},
                "inference": {"steps": 1, "stop": "steps", "validate": False},
                "outputs": {"num_samples": 10, "log_probs": False, "elbo_terms_every": 0, "grad_norms_every": 0}}
        result = fit(spec, {"y": torch.randn(t).tolist()})
    finally:
        fastpath.record, fastpath.simplify = record, simplify
    timings["compiled"] = result.diagnostics["fast_path"]["compiled"]
    return timings


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [50, 100, 200]
    warnings.simplefilter("ignore")
    rows = [(t, measure(t)) for t in sizes]
    base = rows[0][1]
    print(f"{'T':>5} {'record s':>9} {'simplify s':>11} {'record x':>9} {'simplify x':>11}  compiled")
    for t, m in rows:
        print(f"{t:>5} {m.get('record', 0):9.2f} {m.get('simplify', 0):11.2f} "
              f"{m.get('record', 0) / max(base.get('record', 1e-9), 1e-9):9.1f} "
              f"{m.get('simplify', 0) / max(base.get('simplify', 1e-9), 1e-9):11.1f}  {m['compiled']}")


if __name__ == "__main__":
    main()
