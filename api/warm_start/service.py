"""Warm starts at submission: the ``inference.init_from`` check and ``continue``.

- ``check_init_from`` (in ``api.warm_start.checks``): the ``inference.init_from`` check.
- ``continue_job``: a new, normal job with the source job's spec, data (its dataset),
  labels (plus ``vihub/continues: <id>``) and webhook, ``inference.steps`` = the steps
  the source did + the extra ones, and ``init_from: {"job": id, "optimizer": true}``:
  the worker resumes the source's final checkpoint (params, optimizer state, RNG, loss
  curve), so the new job's curve starts with the source's. It goes through the usual
  submission (quotas, dry run, Idempotency-Key, commit then publish).
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.errors import Unprocessable
from api.jobs import service as jobs_service
from api.jobs.results import require_succeeded
from api.jobs.schemas import JobCreate, JobOut
from api.runtime import Runtime, TenantRef
from api.sweeps.schemas import SWEEP_LABELS
from api.warm_start.schemas import ContinueRequest

CONTINUES_LABEL = "vihub/continues"


async def continue_job(runtime: Runtime, tenant: TenantRef, job_id: str, request: ContinueRequest,
                       idempotency_key: str | None) -> tuple[JobOut, bool]:
    body = await run_in_threadpool(_continuation_body, runtime, tenant, job_id, request)
    return await jobs_service.create_job(runtime, tenant, body, idempotency_key)


def _continuation_body(runtime: Runtime, tenant: TenantRef, job_id: str, request: ContinueRequest) -> JobCreate:
    with runtime.sessionmaker() as session:
        source = jobs_service.get_job(session, tenant, job_id)
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
