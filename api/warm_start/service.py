"""Warm starts at submission: the ``inference.init_from`` check and ``continue``.

- ``check_init_from``: a job body with ``inference.init_from: {"job": id}`` is refused
  with 422 ``invalid-warm-start`` (pointer ``/inference/init_from/job``) unless that job is
  this tenant's and has succeeded. Whether its params fit the new model and guide is
  checked by the worker (the engine names every mismatched param; the job then fails
  with ``spec-error``).
- ``continue_job``: a new, normal job with the source job's spec, data (its dataset),
  labels (plus ``vihub/continues: <id>``) and webhook, ``inference.steps`` = the steps
  the source did + the extra ones, and ``init_from: {"job": id, "optimizer": true}``:
  the worker resumes the source's final checkpoint (params, optimizer state, RNG, loss
  curve), so the new job's curve starts with the source's. It goes through the usual
  submission (quotas, dry run, Idempotency-Key, commit then publish).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.runtime import TenantRef
from api.errors import Unprocessable
from api.jobs.schemas import JobCreate, JobOut
from store.job_states import JobState
from store.repositories.jobs import JobRepository

CONTINUES_LABEL = "vihub/continues"
SWEEP_LABELS = ("vihub/sweep", "vihub/sweep-point")  # api.sweeps.service.SWEEP_LABELS


class InvalidWarmStart(Unprocessable):
    slug, title = "invalid-warm-start", "The warm-start job cannot be used"


def check_init_from(runtime: Any, tenant: TenantRef, body: JobCreate) -> None:
    init_from = body.inference.init_from
    if init_from is None:
        return
    from api.ids import is_resource_id

    with runtime.sessionmaker() as session:
        source = (JobRepository(session).get_for_tenant(tenant.id, init_from.job)
                  if is_resource_id(init_from.job) else None)
        state = None if source is None else source.state
        source_spec = {} if source is None else dict(source.spec or {})
        source_progress = {} if source is None else dict(source.progress or {})
    if state is None:
        raise InvalidWarmStart(f"inference.init_from: no job {init_from.job!r} in this account.",
                               pointer="/inference/init_from/job")
    if state != JobState.SUCCEEDED.value:
        raise InvalidWarmStart(f"inference.init_from: job {init_from.job} is {state}; only a succeeded job "
                               "can be a warm start.", pointer="/inference/init_from/job", state=state)
    if init_from.optimizer:
        _check_resumable(body, init_from.job, source_spec, source_progress)


def _check_resumable(body: JobCreate, source_id: str, source_spec: dict[str, Any],
                     source_progress: dict[str, Any]) -> None:
    """``optimizer: true`` resumes the source's final checkpoint: its optimizer state only
    loads into the same optimizer (another one failed the job with a bare ``KeyError``),
    and it resumes at the source's last step (a job of no more steps "succeeded" without
    running one, its results the source's)."""
    inference = source_spec.get("inference") or {}
    source_optimizer = (inference.get("optimizer") or {}).get("name") or "Adam"
    if body.inference.optimizer.name != source_optimizer:
        raise InvalidWarmStart(
            f"inference.init_from.optimizer: job {source_id} was fitted with {source_optimizer}; its optimizer "
            f"state cannot resume {body.inference.optimizer.name}. Use the same optimizer, or optimizer: false "
            "(params only, a fresh optimizer).", pointer="/inference/optimizer/name")
    done = int(source_progress.get("step") or inference.get("steps") or 0)
    if body.inference.steps <= done:
        raise InvalidWarmStart(
            f"inference.init_from.optimizer: job {source_id} stopped at step {done}, where this job resumes; "
            f"inference.steps ({body.inference.steps}) must be larger.", pointer="/inference/steps", limit=done)


async def continue_job(runtime: Any, tenant: TenantRef, job_id: str, request: Any,
                       idempotency_key: str | None) -> tuple[JobOut, bool]:
    from api.jobs import service as jobs_service

    body = await run_in_threadpool(_continuation_body, runtime, tenant, job_id, request)
    return await jobs_service.create_job(runtime, tenant, body, idempotency_key)


def _continuation_body(runtime: Any, tenant: TenantRef, job_id: str, request: Any) -> JobCreate:
    from api.jobs.results import require_succeeded
    from api.jobs.service import get_job

    with runtime.sessionmaker() as session:
        source = get_job(session, tenant, job_id)
        require_succeeded(source)
        spec = dict(source.spec or {})
        steps_done = int((source.progress or {}).get("step") or (spec.get("inference") or {}).get("steps") or 0)
        inference = {**(spec.get("inference") or {}), "steps": steps_done + request.steps,
                     "init_from": {"job": source.id, "optimizer": True}}
        # A continuation is not a sweep member: it must not be listed (or counted) by the
        # source's vihub/sweep label, nor run out of label room because of those labels.
        inherited = {k: v for k, v in (source.labels or {}).items() if k not in SWEEP_LABELS}
        body = {**spec, "inference": inference, "data": {"dataset_id": source.dataset_id},
                "labels": {**inherited, **request.labels, CONTINUES_LABEL: source.id}}
        if source.webhook:
            body["webhook"] = source.webhook
    try:
        return JobCreate.model_validate(body)
    except ValidationError as exc:
        raise Unprocessable(f"The continued job's spec is not valid: {exc.errors()[0].get('msg')}",
                            errors=[{"pointer": "/" + "/".join(str(p) for p in e.get("loc", ())),
                                     "detail": e.get("msg")} for e in exc.errors()]) from exc
