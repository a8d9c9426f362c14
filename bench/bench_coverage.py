"""Coverage of real Pyro code: how much of the corpus (tests/corpus) vihub accepts, runs
and matches plain Pyro on.

    PYTHONPATH=. python bench/bench_coverage.py [name ...]

accepted: the model source compiles in the language and its data binds;
ran:      ``inference.fit`` finishes a few steps;
matches:  its first losses equal plain Pyro's on the same text with the same seed.
Prints one line per model, then the counts and ratios.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
import warnings

import numpy as np


def main(names: list[str]) -> None:
    from inference.language import bind_data, compile_source
    from tests.corpus.harness import losses_match, run_pyro, run_vihub
    from tests.corpus.manifest import CASES

    warnings.simplefilter("ignore")
    cases = [c for c in CASES if not names or c.name in names]
    accepted = ran = matches = 0
    t0 = time.perf_counter()
    for case in cases:
        status = "refused"
        try:
            program = compile_source(case.source, case.entry)
            bind_data(program, case.data(np.random.default_rng(case.seed)))
            accepted += 1
            status = "accepted"
            got = run_vihub(case)
            ran += 1
            status = "ran"
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # the models' own prints
                    reference = run_pyro(case)
            except Exception as exc:  # noqa: BLE001 - the reference cannot run it either
                status = f"ran (reference fails: {type(exc).__name__})"
            else:
                if losses_match(reference, got):
                    matches += 1
                    status = "matches"
                else:
                    status = f"ran, losses differ: {got} vs {reference}"
        except Exception as exc:  # noqa: BLE001 - report every failure and go on
            status += f" -- {type(exc).__name__}: {str(exc)[:160]}"
        print(f"{case.name:34s} {status}")
    n = len(cases)
    print(f"\ncorpus: {n} models ({time.perf_counter() - t0:.0f} s)")
    for label, k in (("accepted", accepted), ("ran", ran), ("matches", matches)):
        print(f"{label:9s} {k:3d} / {n}  ({k / max(n, 1):.0%})")


if __name__ == "__main__":
    main(sys.argv[1:])
