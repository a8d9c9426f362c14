"""The comparison table of fitted jobs: pure numpy (and ArviZ for PSIS-LOO), no I/O.

Each member is a succeeded job's spec, labels and stored ``FitResult`` JSON (read through
``inference.results.formats``, the one module that knows its layout). Per row:

- ``elbo`` / ``elbo_se``: the ELBO re-estimated from the fit's ``log_weight`` draws
  (log p(x, z) - log q(z) for z ~ q, ``outputs.log_prob_draws`` of them, 1000 by default):
  their mean and its Monte Carlo standard error sd / sqrt(n). Many more particles than
  the training loss uses, and the same estimator for every row.
- ``k_hat`` / ``k_hat_reading`` / ``trusted``: the PSIS k-hat of those weights (Yao et al.
  2018) as the fit stored it; a fit with k-hat > 0.7 (reading "unreliable" or "very bad",
  point-mass guides included) is ``trusted: false``.
- ``elpd_loo``, ``elpd_loo_se``, ``p_loo``, ``elpd_diff``, ``elpd_diff_se``, ``loo_weight``,
  ``loo_warning``: PSIS-LOO from the pointwise log-likelihood of the observed sites
  (sites flattened and concatenated in name order), ``arviz.loo(..., reff=1)`` (draws
  from the guide are independent) and ``arviz.compare`` (stacking weights) across the
  rows; only when every row has the same number of observations.
- ``steps``, ``wall_s``, ``converged`` from the result's ``meta``/``diagnostics``.

The recommended row (``recommend``), the documented rule:

1. Candidates are the trusted rows (all rows, with a note, when none is trusted).
2. When the rows' models differ (model source/entry or catalog name), the candidate with
   the highest LOO elpd (the data prefer that model); when only the guide, ELBO,
   optimizer or other settings differ, the highest ELBO (the tighter bound on the same
   log evidence is the better approximation).
3. If LOO is needed but not available for every candidate, the ELBO decides (with a note).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.results.formats import diagnostics_section, read_log_probs

UNTRUSTED_READINGS = ("unreliable", "very bad")
K_HAT_LIMIT = 0.7
SORT_KEYS = ("elbo", "elbo_se", "k_hat", "elpd_loo", "elpd_diff", "loo_weight", "p_loo", "steps", "wall_s",
             "converged", "created_at")


@dataclass
class Member:
    job_id: str
    spec: Mapping[str, Any]
    result: Mapping[str, Any]
    labels: Mapping[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    point: Mapping[str, Any] | None = None  # the sweep point, for a sweep's members


def elbo_estimate(log_weight: Any) -> tuple[float | None, float | None, int]:
    """(mean, standard error, draws) of finite log-weights; (None, None, 0) without any."""
    lw = np.asarray(log_weight if log_weight is not None else [], dtype=float).reshape(-1)
    lw = lw[np.isfinite(lw)]
    if lw.size == 0:
        return None, None, 0
    se = float(lw.std(ddof=1) / math.sqrt(lw.size)) if lw.size > 1 else None
    return float(lw.mean()), se, int(lw.size)


def pointwise_matrix(pointwise: Mapping[str, Any] | None) -> np.ndarray | None:
    """[draws, observations]: each observed site's pointwise log-lik flattened, sites in name order."""
    if not pointwise:
        return None
    parts = []
    for name in sorted(pointwise):
        array = np.asarray(pointwise[name], dtype=float)
        if array.ndim == 0:
            continue
        parts.append(array.reshape(array.shape[0], -1))
    if not parts or len({p.shape[0] for p in parts}) != 1:
        return None
    return np.concatenate(parts, axis=1)


def loo(matrix: np.ndarray) -> Any:
    """``arviz.loo`` of a [draws, observations] log-lik matrix (independent draws: reff=1)."""
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_dict(log_likelihood={"log_lik": matrix[None, ...]})
        return az.loo(idata, pointwise=True, reff=1.0)


def model_key(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec.get("model") or {}, sort_keys=True)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def build_rows(members: Sequence[Member]) -> tuple[list[dict[str, Any]], list[str]]:
    """The table's rows (unsorted, without the recommendation) and notes."""
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    matrices: dict[str, np.ndarray] = {}
    for m in members:
        result = m.result
        log_probs = read_log_probs(result)
        sections = diagnostics_section(result)
        diagnostics, meta = sections["diagnostics"], sections["meta"]
        spec = m.spec
        elbo, elbo_se, draws = elbo_estimate(log_probs.get("log_weight"))
        k_hat = _finite(diagnostics.get("k_hat"))
        reading = diagnostics.get("k_hat_reading") or "unknown"
        trusted = not (reading in UNTRUSTED_READINGS or (k_hat is not None and k_hat > K_HAT_LIMIT))
        inference = spec.get("inference") or {}
        rows.append({
            "job_id": m.job_id,
            "point": dict(m.point) if m.point is not None else None,
            "model": spec.get("model") or {},
            "guide": (spec.get("guide") or {}).get("auto") or ("custom" if (spec.get("guide") or {}).get("source")
                                                                else "list"),
            "elbo_name": (inference.get("elbo") or {}).get("name", "Trace_ELBO"),
            "optimizer": (inference.get("optimizer") or {}).get("name", "Adam"),
            "lr": (inference.get("optimizer") or {}).get("lr"),
            "elbo": elbo, "elbo_se": elbo_se, "elbo_draws": draws,
            "k_hat": k_hat, "k_hat_reading": reading, "trusted": trusted,
            "elpd_loo": None, "elpd_loo_se": None, "p_loo": None, "elpd_diff": None, "elpd_diff_se": None,
            "loo_weight": None, "loo_warning": None, "loo_max_pareto_k": None, "n_observations": None,
            "steps": int(meta.get("steps_done") or len(result.get("loss") or [])),
            "wall_s": _finite(meta.get("wall_s")),
            "converged": diagnostics.get("converged"),
            "created_at": m.created_at,
            "labels": dict(m.labels or {}),
            "recommended": False,
        })
        matrix = pointwise_matrix(log_probs.get("pointwise"))
        if matrix is not None:
            matrices[m.job_id] = matrix
    _add_loo(rows, matrices, notes)
    return rows, notes


# PSIS smooths the largest ~20% of the importance ratios: with one draw there is no tail
# (arviz.loo raises IndexError), so a fit stored with a single draw gets no LOO.
MIN_LOO_DRAWS = 2
LOO_ERRORS = (ValueError, IndexError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError)


def _loo_or_note(job_id: str, matrix: np.ndarray, notes: list[str]) -> Any:
    """``loo(matrix)``, or None with a note when this fit's draws cannot give one: one
    degenerate member must not take the whole table down."""
    if matrix.shape[0] < MIN_LOO_DRAWS:
        notes.append(f"job {job_id} stored {matrix.shape[0]} log-likelihood draw(s); PSIS-LOO needs at least "
                     f"{MIN_LOO_DRAWS} (outputs.num_samples / log_prob_draws): no LOO for it")
        return None
    try:
        return loo(matrix)
    except LOO_ERRORS as exc:
        notes.append(f"PSIS-LOO failed for job {job_id} ({type(exc).__name__}): no LOO for it")
        return None


def _add_loo(rows: list[dict[str, Any]], matrices: Mapping[str, np.ndarray], notes: list[str]) -> None:
    if not matrices:
        notes.append("no pointwise log-likelihood stored (outputs.log_probs: false?): no PSIS-LOO")
        return
    sizes = {m.shape[1] for m in matrices.values()}
    if len(sizes) != 1:
        notes.append(f"the fits have different numbers of observations {sorted(sizes)}: no PSIS-LOO comparison")
        return
    elpd = {}
    for job_id, matrix in matrices.items():
        data = _loo_or_note(job_id, matrix, notes)
        if data is not None:
            elpd[job_id] = data
    if not elpd:
        return
    for row in rows:
        data = elpd.get(row["job_id"])
        if data is None:
            continue
        row.update({
            "elpd_loo": float(data["elpd_loo"]), "elpd_loo_se": float(data["se"]), "p_loo": float(data["p_loo"]),
            "loo_warning": bool(data["warning"]), "loo_max_pareto_k": _finite(np.max(np.asarray(data["pareto_k"]))),
            "n_observations": int(data["n_data_points"]),
        })
    if len(elpd) == 1:
        only = next(r for r in rows if r["job_id"] in elpd)
        only.update({"elpd_diff": 0.0, "elpd_diff_se": 0.0, "loo_weight": 1.0})
        return
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            table = az.compare(dict(elpd), ic="loo")
        except LOO_ERRORS as exc:
            notes.append(f"arviz.compare failed on these fits ({type(exc).__name__}): no elpd_diff or loo_weight")
            return
    for row in rows:
        if row["job_id"] in table.index:
            line = table.loc[row["job_id"]]
            row.update({"elpd_diff": float(line["elpd_diff"]), "elpd_diff_se": float(line["dse"]),
                        "loo_weight": float(line["weight"])})
    if any(r["loo_warning"] for r in rows):
        notes.append("some PSIS-LOO estimates have Pareto k > 0.7 for some observations (loo_warning)")


def recommend(rows: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """Mark the recommended row (see the module docstring); returns how it was chosen."""
    models_differ = len({json.dumps(r["model"], sort_keys=True) for r in rows}) > 1
    criterion = "elpd_loo" if models_differ else "elbo"
    trusted = [r for r in rows if r["trusted"]]
    candidates = trusted
    if not trusted:
        candidates = list(rows)
        if rows:
            notes.append("no fit has k-hat <= 0.7: the recommendation is among untrusted fits")
    if criterion == "elpd_loo" and any(r["elpd_loo"] is None for r in candidates):
        notes.append("the models differ but LOO is not available for every fit: the ELBO decided")
        criterion = "elbo"
    scored = [r for r in candidates if r[criterion] is not None]
    chosen = max(scored, key=lambda r: r[criterion]) if scored else None
    if chosen is not None:
        chosen["recommended"] = True
    reason = {
        "elpd_loo": "the models differ: the highest PSIS-LOO elpd among fits with k-hat <= 0.7",
        "elbo": "the same model: the highest ELBO among fits with k-hat <= 0.7",
    }[criterion]
    return {"job_id": chosen["job_id"] if chosen else None, "criterion": criterion,
            "models_differ": models_differ, "reason": reason}


def sort_rows(rows: list[dict[str, Any]], key: str, descending: bool) -> list[dict[str, Any]]:
    """Sorted by ``key``; rows without a value last whatever the order."""
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return sorted(present, key=lambda r: r[key], reverse=descending) + missing


def json_safe(value: Any) -> Any:
    """Non-finite floats (a NaN pointwise log-lik, an infinite k-hat) as None: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def comparison(members: Sequence[Member], *, sort: str = "elbo", descending: bool = True) -> dict[str, Any]:
    rows, notes = build_rows(members)
    rows = json_safe(rows)
    chosen = recommend(rows, notes)
    return {"rows": sort_rows(rows, sort, descending), "recommended": chosen["job_id"],
            "rule": chosen, "sort": sort, "order": "desc" if descending else "asc", "notes": notes}
