"""Regenerates the catalog's example datasets in ``inference/catalog/data/``.

Not imported by the package: run ``python -m inference.catalog.generate_data`` from the
repository root (it reads the posteriordb copies in ``../shared/datasets/posteriordb``).
Synthetic datasets are drawn with fixed numpy seeds, so a rerun writes the same files.
The values used to simulate each synthetic dataset are stored next to it under
``"_true_values"`` (not a model input; the catalog exposes them as ``reference``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).parent / "data"
POSTERIORDB = (
    Path(__file__).resolve().parents[3] / "shared" / "datasets" / "posteriordb"
)


def _round(values: np.ndarray, digits: int = 4) -> list:
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def _posteriordb(name: str) -> dict:
    return json.loads((POSTERIORDB / f"{name}.json").read_text())


def eight_schools() -> dict:
    return _posteriordb("eight_schools")


def linear_regression() -> dict:
    kidiq = _posteriordb("kidiq")
    return {"N": kidiq["N"], "mom_iq": kidiq["mom_iq"], "kid_score": kidiq["kid_score"]}


def logistic_regression() -> dict:
    rng = np.random.default_rng(20240101)
    n, d = 200, 3
    alpha, beta = -0.5, np.array([1.5, -1.0, 0.5])
    x = rng.normal(size=(n, d))
    p = 1.0 / (1.0 + np.exp(-(alpha + x @ beta)))
    y = (rng.uniform(size=n) < p).astype(float)
    return {
        "X": _round(x),
        "y": y.tolist(),
        "_true_values": {"alpha": alpha, "beta": beta.tolist()},
    }


def poisson_regression() -> dict:
    rng = np.random.default_rng(20240102)
    n = 100
    alpha, beta = 1.0, 0.6
    x = rng.normal(size=n)
    counts = rng.poisson(np.exp(alpha + beta * x))
    return {
        "N": n,
        "x": _round(x),
        "counts": counts.astype(int).tolist(),
        "_true_values": {"alpha": alpha, "beta": beta},
    }


def hierarchical_intercept() -> dict:
    rng = np.random.default_rng(20240103)
    groups, n = 8, 120
    mu, tau, sigma = 2.0, 1.0, 0.5
    alpha = rng.normal(mu, tau, size=groups)
    group = np.arange(n) % groups
    y = rng.normal(alpha[group], sigma)
    return {
        "J": groups,
        "N": n,
        "group": group.astype(int).tolist(),
        "y": _round(y),
        "_true_values": {"mu": mu, "tau": tau, "sigma": sigma, "alpha": _round(alpha)},
    }


def gaussian_mixture() -> dict:
    return _posteriordb("low_dim_gauss_mix")


def hmm() -> dict:
    rng = np.random.default_rng(20240104)
    num_sequences, t_len = 10, 10
    transition = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    locs, scale = np.array([-2.0, 0.0, 2.0]), 0.5
    states = np.zeros((num_sequences, t_len), dtype=int)
    for n in range(num_sequences):
        state = 0
        for t in range(t_len):
            state = rng.choice(3, p=transition[state])
            states[n, t] = state
    y = rng.normal(locs[states], scale)
    return {
        "N": num_sequences,
        "T": t_len,
        "y": _round(y),
        "_true_values": {
            "locs": locs.tolist(),
            "scale": scale,
            "probs_x": transition.tolist(),
            "states": states.tolist(),
        },
    }


def vae() -> dict:
    # Two binary "prototypes" of 16 pixels, each pixel flipped with probability 0.1:
    # a 2-D latent space separates them cleanly.
    rng = np.random.default_rng(20240105)
    prototypes = np.array([[1] * 8 + [0] * 8, [0, 1] * 8], dtype=float)
    which = rng.integers(0, 2, size=64)
    flips = rng.uniform(size=(64, 16)) < 0.1
    x = np.abs(prototypes[which] - flips)
    return {"x": x.tolist(), "_true_values": {"prototype": which.tolist()}}


def arK() -> dict:
    return _posteriordb("arK")


def garch() -> dict:
    # The first 100 of posteriordb's 200 points: the recursion over time is a Python
    # loop, and a short series keeps a 100-step fit within a couple of seconds.
    data = _posteriordb("garch")
    t_len = 100
    return {"T": t_len, "y": data["y"][:t_len], "sigma1": data["sigma1"]}


def gp_pois_regr() -> dict:
    data = _posteriordb("gp_pois_regr")
    return {"N": data["N"], "x": [float(v) for v in data["x"]], "k": data["k"]}


GENERATORS = {
    "eight_schools_centered": eight_schools,
    "eight_schools_noncentered": eight_schools,
    "linear_regression": linear_regression,
    "logistic_regression": logistic_regression,
    "poisson_regression": poisson_regression,
    "hierarchical_intercept": hierarchical_intercept,
    "gaussian_mixture": gaussian_mixture,
    "hmm": hmm,
    "vae": vae,
    "arK": arK,
    "garch": garch,
    "gp_pois_regr": gp_pois_regr,
}


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    for name, generate in GENERATORS.items():
        path = DATA_DIR / f"{name}.json"
        path.write_text(json.dumps(generate(), separators=(",", ":")) + "\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
