"""Reading a job's results from its stored artifacts, for the result endpoints.

The worker stores the engine's ``FitResult.to_json()`` as the ``result_json`` artifact and
binary forms beside it (``samples_npz``, ``log_probs_npz``, ``params_safetensors``,
``param_store_pt``, ``netcdf``). A binary download is served from its stored artifact
when there is one and otherwise encoded from the JSON result with the same functions
(``inference.results.formats``, which also reads the JSON layout). The loss curve is read from
the ``loss_points`` table, so it is available (partial) while the job is still running.

Parsed JSON results are cached per process by (job id, artifact sha256): a dashboard
polling ``/summary`` does not re-parse megabytes of samples each time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from api.errors import ResultsNotReady, VihubError
from inference.results import formats
from store.job_states import JobState
from store.models import ArtifactKind, Job
from store.repositories.artifacts import ArtifactRepository
from store.blobs import BlobNotFound
from store.repositories.loss_points import LossPointRepository

log = logging.getLogger("vihub.api.results")


class ResultsMissing(VihubError):
    """The job's result row exists but its blob is gone from the blob store."""

    status, slug, title = 410, "results-missing", "Results missing"


def _result_json(session: Session, job: Job) -> bytes:
    try:
        return ArtifactRepository(session).get_content(job.id, ArtifactKind.RESULT_JSON) or b"{}"
    except BlobNotFound as exc:
        log.error("job %s: its result blob is missing: %s", job.id, exc)
        raise ResultsMissing(f"The stored results of job {job.id} are missing.") from exc

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
    content = _result_json(session, job)
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
    try:
        return ArtifactRepository(session).get_content(job.id, kind)
    except BlobNotFound:  # encoded from the JSON result instead (when that is there)
        log.error("job %s: its %s blob is missing; encoding it from the JSON result", job.id, kind)
        return None


def result_json_bytes(session: Session, job: Job) -> bytes:
    """The raw stored result JSON (what the predict child process parses)."""
    require_succeeded(job)
    return _result_json(session, job)


# ---------------------------------------------------------------------------------------
# The loss curve (the other sections of the JSON layout are read by
# ``inference.results.formats``)


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


def loss_arrays(body: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The binary loss forms: ``step``, ``loss`` and the ELBO terms / gradient norms as
    columns (``elbo_terms/kl/<site>``, ``grad_norms/norms/<param>``, ...)."""
    arrays = {"step": np.asarray(body["steps"], dtype=np.int64),
              "loss": np.asarray([np.nan if v is None else v for v in body["loss"]], dtype=np.float64)}
    for section in ("elbo_terms", "grad_norms"):
        arrays.update(formats.records_to_columns(body.get(section), section))
    return arrays


def downsample(steps: list[int], *series: list[Any], max_points: int | None) -> tuple[list[int], list[list[Any]]]:
    """At most ``max_points`` evenly spaced points, always keeping the first and the last."""
    n = len(steps)
    if max_points is None or n <= max_points:
        return list(steps), [list(s) for s in series]
    if max_points == 1:
        keep = [n - 1]
    else:
        keep = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [steps[i] for i in keep], [[s[i] for i in keep] for s in series]


def downsample_series(series: Any, max_points: int | None) -> Any:
    """Downsample a per-step record list (``elbo_terms``: ``[{"step", "elbo",
    "reconstruction": {...}, "kl": {...}}, ...]``; ``grad_norms``: ``[{"step", "norms"}]``)
    the way the loss curve is: evenly spaced, first and last kept."""
    if not isinstance(series, list) or max_points is None or len(series) <= max_points:
        return series
    kept, _ = downsample(list(range(len(series))), max_points=max_points)
    return [series[i] for i in kept]
