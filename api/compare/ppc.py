"""Posterior predictive checks from stored arrays: observed values vs replicated draws.

For each observed site, ``y`` (the ``observed_npz`` artifact: the site's value as the
model saw it) and ``y_rep`` (``FitResult.predictive[site]``, draws first) give, per test
statistic T (``mean``, ``sd``, ``min``, ``max`` and the requested quantiles ``q<p>``):

- ``observed``: T(y);
- ``replicated``: mean, sd, 5/50/95% quantiles of T(y_rep) over the draws;
- ``p_value``: the Bayesian (posterior predictive) p-value P(T(y_rep) >= T(y)), ties
  counted half (Gelman et al., BDA3 ch. 6). Values near 0 or 1 flag a misfit.

plus a ``histogram`` of y and the draw-averaged histogram of y_rep on common bins (for
the dashboard's PPC panel). Pure numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HISTOGRAM_BINS = 30


def _quantile_name(q: float) -> str:
    return f"q{q * 100:g}".replace(".", "_")


def statistics(observed: np.ndarray, replicated: np.ndarray, quantiles: Sequence[float] = DEFAULT_QUANTILES,
               ) -> dict[str, Any]:
    """PPC statistics of one site; ``replicated`` is [draws, *observed.shape]."""
    y = np.asarray(observed, dtype=float).reshape(-1)
    draws = replicated.shape[0]
    y_rep = np.asarray(replicated, dtype=float).reshape(draws, -1)
    if y_rep.shape[1] != y.size:
        raise ValueError(f"replicated draws have {y_rep.shape[1]} values per draw, the data {y.size}")
    if y.size == 0 or not (np.isfinite(y).all() and np.isfinite(y_rep).all()):
        raise ValueError("the observed values or the replicated draws are empty or not all finite")
    funcs: dict[str, Any] = {
        "mean": lambda a: np.mean(a, axis=-1),
        "sd": lambda a: np.std(a, axis=-1, ddof=1) if a.shape[-1] > 1 else np.zeros(a.shape[:-1]),
        "min": lambda a: np.min(a, axis=-1),
        "max": lambda a: np.max(a, axis=-1),
    }
    for q in quantiles:
        funcs[_quantile_name(q)] = lambda a, q=q: np.quantile(a, q, axis=-1)
    stats: dict[str, Any] = {}
    for name, fn in funcs.items():
        t_obs = float(fn(y))
        t_rep = np.asarray(fn(y_rep), dtype=float)
        p_value = float(np.mean(t_rep > t_obs) + 0.5 * np.mean(t_rep == t_obs))
        stats[name] = {
            "observed": t_obs,
            "replicated": {"mean": float(t_rep.mean()), "sd": float(t_rep.std(ddof=1)) if draws > 1 else 0.0,
                           "q05": float(np.quantile(t_rep, 0.05)), "q50": float(np.quantile(t_rep, 0.5)),
                           "q95": float(np.quantile(t_rep, 0.95))},
            "p_value": p_value,
        }
    lo, hi = float(min(y.min(), np.quantile(y_rep, 0.005))), float(max(y.max(), np.quantile(y_rep, 0.995)))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, HISTOGRAM_BINS + 1)
    rep_counts = np.mean([np.histogram(row, bins=edges)[0] for row in y_rep[: min(draws, 500)]], axis=0)
    return {
        "num_observations": int(y.size), "num_draws": int(draws), "statistics": stats,
        "histogram": {"edges": edges.tolist(), "observed": np.histogram(y, bins=edges)[0].tolist(),
                      "replicated_mean": rep_counts.tolist()},
    }


def ppc(observed: Mapping[str, np.ndarray], predictive: Mapping[str, np.ndarray],
        quantiles: Sequence[float] = DEFAULT_QUANTILES) -> dict[str, Any]:
    """``{"sites": {site: statistics}, "notes": [...]}`` for the sites in both."""
    sites: dict[str, Any] = {}
    notes: list[str] = []
    for name in sorted(observed):
        if name not in predictive:
            notes.append(f"observed site {name!r} has no replicated draws")
            continue
        replicated = np.asarray(predictive[name], dtype=float)
        try:
            sites[name] = statistics(np.asarray(observed[name]), replicated, quantiles)
        except ValueError as exc:
            notes.append(f"site {name!r}: {exc}")
    return {"sites": sites, "quantiles": list(quantiles), "notes": notes}
