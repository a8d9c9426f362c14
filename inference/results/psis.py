"""Pareto-smoothed importance sampling diagnostics of a fitted guide.

``pareto_khat`` estimates the shape k of a generalized Pareto distribution fitted to the
upper tail of the importance ratios p(x, z) / q(z), z ~ q (Yao, Vehtari, Simpson and
Gelman 2018, "Yes, but did it work?"). It follows Vehtari, Simpson, Gelman, Yao and
Gabry, "Pareto smoothed importance sampling" (2015; JMLR 2024): the tail is the
largest M = ceil(min(0.2 S, 3 sqrt(S))) ratios (draws are independent, so the relative
efficiency is 1), shifted by the cutoff; k is the Zhang & Stephens (2009) empirical-Bayes
estimate with the weakly informative prior used by ``loo`` and ArviZ (pseudo-observations
worth 10 at k = 0.5). numpy only; it is tested against ``arviz.psislw``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_PRIOR_K_WEIGHT = 10.0
_PRIOR_K_VALUE = 0.5
_PRIOR_B_SCALE = 3.0


def tail_length(num_draws: int, r_eff: float = 1.0) -> int:
    """M = ceil(min(S / 5, 3 sqrt(S / r_eff)))."""
    return math.ceil(min(num_draws / 5.0, 3.0 * math.sqrt(num_draws / r_eff)))


def gpd_fit(tail: np.ndarray) -> tuple[float, float]:
    """(k, sigma) of a generalized Pareto fit to positive exceedances ``tail`` (sorted ascending).

    Zhang & Stephens (2009): a grid of m = 30 + floor(sqrt(n)) values of theta = -k / sigma,
    weighted by their profile likelihood, then k shrunk towards 0.5 by the prior.
    """
    x = np.sort(np.asarray(tail, dtype=float))
    n = x.size
    m = 30 + int(math.sqrt(n))
    quartile = x[int(n / 4 + 0.5) - 1]
    j = np.arange(1, m + 1, dtype=float)
    theta = 1.0 / x[-1] + (1.0 - np.sqrt(m / (j - 0.5))) / (_PRIOR_B_SCALE * quartile)
    k_of_theta = np.mean(np.log1p(-theta[:, None] * x[None, :]), axis=1)
    profile = n * (np.log(-theta / k_of_theta) - k_of_theta - 1.0)
    # weights_j = 1 / sum_i exp(profile_i - profile_j): a softmax written so it cannot overflow.
    weights = 1.0 / np.exp(profile[None, :] - profile[:, None]).sum(axis=1)
    keep = weights >= 10 * np.finfo(float).eps
    weights, theta = weights[keep], theta[keep]
    weights = weights / weights.sum()
    theta_hat = float(np.sum(theta * weights))
    k = float(np.mean(np.log1p(-theta_hat * x)))
    sigma = -k / theta_hat
    k = (n * k + _PRIOR_K_WEIGHT * _PRIOR_K_VALUE) / (n + _PRIOR_K_WEIGHT)
    return k, sigma


def pareto_khat(log_weights: Sequence[float] | np.ndarray, *, r_eff: float = 1.0) -> float:
    """The PSIS Pareto k-hat of ``log_weights`` (one per independent draw).

    Returns ``inf`` when the tail has at most 4 distinct exceedances (too few draws, or
    equal weights, as from a point-mass guide: there is nothing to fit) and ``nan`` when
    any weight is nan. Non-finite ``-inf`` weights are valid (zero ratios).
    """
    lw = np.asarray(log_weights, dtype=float).reshape(-1)
    if lw.size == 0 or np.isnan(lw).any():
        return float("nan")
    if np.isposinf(lw).any():
        return float("inf")
    lw = lw - lw.max()
    cutoff_index = tail_length(lw.size, r_eff)
    order = np.sort(lw)
    # The cutoff is the (M+1)-th largest log weight; the tail is what lies strictly above it.
    cutoff = max(order[-cutoff_index - 1] if cutoff_index < lw.size else order[0], np.log(np.finfo(float).tiny))
    tail = order[order > cutoff]
    if tail.size <= 4:
        return float("inf")
    exceedances = np.exp(tail) - np.exp(cutoff)
    k, _ = gpd_fit(exceedances)
    return k


# The usual reading of k-hat (Vehtari et al.; loo, ArviZ): (bound, reading) in order, the
# first bound k-hat is below names it. ``khat_reading`` and ``/v1/capabilities`` read this.
KHAT_READINGS: tuple[tuple[float, str], ...] = (
    (0.5, "good"),
    (0.7, "ok"),
    (1.0, "unreliable"),
    (math.inf, "very bad"),
)


def khat_reading(k: float) -> str:
    """The usual reading of k-hat: "good" (< 0.5), "ok" (< 0.7), "unreliable" (< 1), "very bad"."""
    if k is None or np.isnan(k):
        return "unknown"
    return next(reading for bound, reading in KHAT_READINGS if k < bound or bound == math.inf)


def importance_ess(log_weights: Sequence[float] | np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of the self-normalised weights."""
    lw = np.asarray(log_weights, dtype=float).reshape(-1)
    lw = lw[np.isfinite(lw)] if not np.isnan(lw).any() else lw
    if lw.size == 0 or np.isnan(lw).any():
        return float("nan")
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / np.sum(w**2))


def importance_diagnostics(
    log_weights: Sequence[float] | np.ndarray,
    *,
    point_mass_guide: bool = False,
    has_latents: bool = True,
) -> dict:
    """k-hat, its reading, the importance ESS and a note, for ``FitResult.diagnostics``.

    A point-mass guide (AutoDelta, a MAP fit) has no density to weigh against: its
    "weights" are all equal, which PSIS would read as perfect. It is reported as
    ``k_hat = inf``, reading "very bad", with a note that the guide represents no
    uncertainty. A model without latent sites gets "not applicable" (pass
    ``has_latents`` from :func:`inference.results.trace_log_probs`). Otherwise this is
    :func:`pareto_khat` and :func:`khat_reading`.
    """
    lw = np.asarray(log_weights, dtype=float).reshape(-1)
    if not has_latents:
        return {
            "k_hat": float("nan"),
            "k_hat_reading": "not applicable",
            "importance_ess": float("nan"),
            "k_hat_note": "the model has no latent sites: there is no posterior to check",
        }
    if point_mass_guide:
        return {
            "k_hat": float("inf"),
            "k_hat_reading": "very bad",
            "importance_ess": float("nan"),
            "k_hat_note": "point-mass guide (Delta sites): it represents no posterior "
            "uncertainty, so importance weights and k-hat are not meaningful",
        }
    k = pareto_khat(lw)
    out = {"k_hat": k, "k_hat_reading": khat_reading(k), "importance_ess": importance_ess(lw)}
    if np.isposinf(k) and lw.size and np.ptp(lw) == 0:
        out["k_hat_note"] = "all importance weights are equal; nothing to fit the tail to"
    elif np.isposinf(k):
        out["k_hat_note"] = "too few distinct draws in the tail to fit (use more draws)"
    return out
