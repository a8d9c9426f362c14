"""SVI steps per second of catalog models run through the model language, against the
same models written directly in Pyro, measured in the same run.

For each model both versions get the same data, seed, guide (the catalog's suggested
autoguide, or the hand-written guide compiled / native), ELBO and optimizer, with Pyro
validation off (as the service trains). Rounds alternate between the two versions and
each keeps its best round, so a burst of load from other processes hurts neither side
more. Steps are timed in CPU seconds of this process by default (``--clock cpu``):
on a shared machine other processes' load inflates wall time but not that.
Prints steps/s per model, the ratio language / native (target >= 0.95) and the
geometric mean of the ratios.

    python bench/bench_language.py [--steps 100] [--rounds 3] [--clock cpu|wall] [--models a,b,...]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "inference" / "catalog"))

import catalog_checks
import catalog_reference_models as reference
import pyro
import torch

from inference import catalog
from inference.language import bind_data, compile_source

DEFAULT_MODELS = [
    "eight_schools_noncentered",
    "linear_regression",
    "logistic_regression",
    "hierarchical_intercept",
    "gaussian_mixture",
    "hmm",
    "vae",
    "arK",
]
WARMUP_STEPS = 10


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def steps_per_second(model, guide, entry, kwargs, steps: int, clock) -> float:
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = catalog_checks.suggested_svi(entry.suggested, model, guide)
    for _ in range(WARMUP_STEPS):
        svi.step(**kwargs)
    start = clock()
    for _ in range(steps):
        loss = svi.step(**kwargs)
    elapsed = clock() - start
    if not math.isfinite(loss):
        raise RuntimeError(f"{entry.name}: non-finite loss {loss}")
    return steps / elapsed


def bench_model(name: str, steps: int, rounds: int, clock) -> tuple[float, float]:
    entry = catalog.get(name)
    language_model = compile_source(entry.source, entry.entry)
    kwargs = bind_data(language_model, entry.example_data).kwargs
    language_guide = (
        compile_source(entry.source, entry.guide_entry) if entry.guide_entry else None
    )
    native_model = reference.MODELS[name]
    native_guide = reference.GUIDES.get(name)
    best = {"language": 0.0, "native": 0.0}
    for _ in range(rounds):
        best["native"] = max(
            best["native"],
            steps_per_second(native_model, native_guide, entry, kwargs, steps, clock),
        )
        best["language"] = max(
            best["language"],
            steps_per_second(
                language_model, language_guide, entry, kwargs, steps, clock
            ),
        )
    return best["language"], best["native"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=100, help="timed SVI steps per round"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per model"
    )
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="cpu", help="what a second is"
    )
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated catalog names",
    )
    args = parser.parse_args(argv)

    pyro.enable_validation(False)
    torch.set_num_threads(1)  # small models: threads only add noise
    print(
        f"torch {torch.__version__}, pyro {pyro.__version__}, {args.steps} steps x {args.rounds} rounds, "
        f"best round kept, {args.clock} clock"
    )
    print(f"{'model':<28}{'language steps/s':>18}{'pyro steps/s':>15}{'ratio':>8}")
    ratios = []
    for name in args.models.split(","):
        language_rate, native_rate = bench_model(
            name, args.steps, args.rounds, CLOCKS[args.clock]
        )
        ratio = language_rate / native_rate
        ratios.append(ratio)
        print(
            f"{name:<28}{language_rate:>18.1f}{native_rate:>15.1f}{ratio:>8.3f}",
            flush=True,
        )
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    verdict = "meets" if geomean >= 0.95 else "below"
    print(f"{'geometric mean ratio':<61}{geomean:>8.3f}  ({verdict} the 0.95 target)")


if __name__ == "__main__":
    main()
