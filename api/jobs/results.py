"""Reading a job's results from its stored artifacts, for the result endpoints.

The worker stores the engine's ``FitResult.to_json()`` as the ``result_json`` artifact and
binary forms beside it (``samples_npz``, ``log_probs_npz``, ``params_safetensors``,
``param_store_pt``, ``netcdf``). A binary download is served from its stored artifact
when there is one and otherwise encoded from the JSON result. The loss curve is read from
the ``loss_points`` table, so it is available (partial) while the job is still running.

Parsed JSON results are cached per process by (job id, artifact sha256): a dashboard
polling ``/summary`` does not re-parse megabytes of samples each time.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api.errors import ResultsNotReady
from api.formats import downsample
from store.job_states import JobState
from store.models import ArtifactKind, Job
from store.repositories.artifacts import ArtifactRepository
from store.repositories.loss_points import LossPointRepository

_CACHE_SIZE = 16
# A parsed result takes several times its JSON size: 16 results of hundreds of MB each
# would stay resident in the API process. Larger ones are parsed per request, not kept.
_CACHE_MAX_ITEM_BYTES = 16 * 1024 * 1024
_cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()


def require_succeeded(job: Job) -> None:
    if job.state != JobState.SUCCEEDED.value:
        hint = {
            JobState.QUEUED.value: "it is queued",
            JobState.RUNNING.value: "it is still running",
            JobState.FAILED.value: "it failed (see the job's error)",
            JobState.CANCELLED.value: "it was cancelled",
        }.get(job.state, job.state)
        raise ResultsNotReady(f"Job {job.id} has no results: {hint}.", state=job.state)


def load_result(session: Session, job: Job) -> dict[str, Any]:
    """The job's ``FitResult`` JSON (409 until the job has succeeded)."""
    require_succeeded(job)
    artifacts = ArtifactRepository(session)
    meta = artifacts.get(job.id, ArtifactKind.RESULT_JSON)
    if meta is None:
        raise ResultsNotReady(f"Job {job.id} succeeded but its results are not stored yet.", state=job.state)
    key = (job.id, meta.sha256)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    content = artifacts.get_content(job.id, ArtifactKind.RESULT_JSON) or b"{}"
    result = json.loads(content)
    if len(content) > _CACHE_MAX_ITEM_BYTES:
        return result
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def stored_blob(session: Session, job: Job, kind: str) -> bytes | None:
    require_succeeded(job)
    return ArtifactRepository(session).get_content(job.id, kind)


def result_json_bytes(session: Session, job: Job) -> bytes:
    """The raw stored result JSON (what the predict child process parses)."""
    require_succeeded(job)
    return ArtifactRepository(session).get_content(job.id, ArtifactKind.RESULT_JSON) or b"{}"


# ---------------------------------------------------------------------------------------
# Sections


def params(result: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "guide_params": result.get("guide_params") or {},
        "model_params": result.get("model_params") or {},
    }


def loss(session: Session, job: Job, result: Mapping[str, Any] | None, max_points: int | None) -> dict[str, Any]:
    points = LossPointRepository(session).list_for_job(job.id)
    steps = [step for step, _ in points]
    values = [value for _, value in points]
    if not points and result and isinstance(result.get("loss"), list):
        # Results written without per-step rows: the engine's own curve (one per step).
        values = list(result["loss"])
        steps = list(range(1, len(values) + 1))
    total = len(steps)
    steps, (values,) = downsample(steps, values, max_points=max_points)
    body: dict[str, Any] = {"job_id": job.id, "state": job.state, "num_points": total,
                            "steps": steps, "loss": values}
    body["elbo_terms"] = downsample_series(result.get("elbo_terms"), max_points) if result else None
    body["grad_norms"] = downsample_series(result.get("grad_norms"), max_points) if result else None
    return body


def downsample_series(series: Any, max_points: int | None) -> Any:
    """Downsample a per-step record list (``elbo_terms``: ``[{"step", "elbo",
    "reconstruction": {...}, "kl": {...}}, ...]``; ``grad_norms``: ``[{"step", "norms"}]``)
    the way the loss curve is: evenly spaced, first and last kept."""
    if not isinstance(series, list) or max_points is None or len(series) <= max_points:
        return series
    kept, _ = downsample(list(range(len(series))), max_points=max_points)
    return [series[i] for i in kept]


def records_to_columns(records: Any, prefix: str) -> dict[str, np.ndarray]:
    """``[{"step": 0, "kl": {"mu": 1.0}}, ...]`` -> ``{"<prefix>/step": [...],
    "<prefix>/kl/mu": [...]}`` (missing values become NaN) for the binary loss forms."""
    if not isinstance(records, list) or not records:
        return {}
    flat_rows = [flatten_arrays(r) if isinstance(r, Mapping) else {} for r in records]
    names = sorted({k for row in flat_rows for k, v in row.items() if v.ndim == 0})
    return {
        f"{prefix}/{name}": np.asarray([float(row[name]) if name in row else np.nan for row in flat_rows])
        for name in names
    }


def samples(result: Mapping[str, Any]) -> dict[str, Any]:
    body = {"samples": result.get("samples") or {}}
    if result.get("predictive"):
        body["predictive"] = result["predictive"]
    return body


def log_probs(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"log_probs": result.get("log_probs") or {}}


def diagnostics(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"diagnostics": result.get("diagnostics") or {}, "meta": result.get("meta") or {}}


def summary(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"summary": result.get("summary") or {}}


# ---------------------------------------------------------------------------------------
# JSON -> flat arrays for binary encoders


def flatten_arrays(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"samples": {"mu": [..]}}`` -> ``{"samples/mu": array}``. A ``{"value": ...}``
    record (a fitted parameter with shape and constraint) contributes its value."""
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, Mapping):
        if "value" in obj and not isinstance(obj["value"], Mapping):
            array = _numeric(obj["value"])
            if array is not None and prefix:
                out[prefix] = array
            return out
        for key, value in obj.items():
            out.update(flatten_arrays(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    array = _numeric(obj)
    if array is not None and prefix:
        out[prefix] = array
    return out


def _numeric(value: Any) -> np.ndarray | None:
    if isinstance(value, (bool, int, float)) or isinstance(value, list):
        try:
            array = np.asarray(value, dtype=float if not isinstance(value, bool) else bool)
        except (TypeError, ValueError):
            return None
        return array
    return None

