"""``/v1/jobs``: submit, get, list, cancel, delete, and the SSE progress stream."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import CurrentTenant, KnownQueryOnly, PageSize, RuntimeDep, SessionDep
from api.errors import Unprocessable, problem_responses
from api.jobs import events, service
from api.jobs.schemas import JOB_STATES, JobCreate, JobList, JobOut, JobStateName

router = APIRouter(prefix="/jobs", tags=["jobs"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255,
           description="Same key and same body return the same job; same key, other body: 409"),
]


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit a job (validated by a dry run, then queued)",
    responses={200: {"model": JobOut, "description": "Idempotent replay: the job created earlier with this key"},
               **problem_responses(400, 401, 403, 404, 409, 413, 422, 429, 500, 503)},
)
async def create_job(body: JobCreate, runtime: RuntimeDep, tenant: CurrentTenant,
                     idempotency_key: IdempotencyKey = None) -> JSONResponse:
    # No request session: the service runs each database step in a short session of its
    # own, so nothing is held across the dry run (see api.jobs.service).
    out, created = await service.create_job(runtime, tenant, body, idempotency_key)
    return JSONResponse(out.model_dump(mode="json"), status_code=202 if created else 200,
                        headers={"Location": out.links.self})


@router.get("", response_model=JobList, summary="This account's jobs, newest first, with page tokens",
            responses=problem_responses(400, 401, 422, 500), dependencies=[KnownQueryOnly])
def list_jobs(
    session: SessionDep,
    tenant: CurrentTenant,
    size: PageSize,
    state: Annotated[list[JobStateName] | None, Query(description="Repeat to match several states")] = None,
    label: Annotated[list[str] | None, Query(description="key=value; repeat to require several")] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    page_token: Annotated[str | None, Query(max_length=512)] = None,
) -> JobList:
    return service.list_jobs(session, tenant, states=list(state or []), labels=_labels(label or []),
                             created_after=_aware(created_after, "created_after"),
                             created_before=_aware(created_before, "created_before"),
                             page_token=page_token, page_size=size or 50)


@router.get("/{job_id}", response_model=JobOut, summary="A job: state, progress, timings, error",
            responses=problem_responses(401, 404, 422, 500))
def get_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> JobOut:
    return service.job_out(service.get_job(session, tenant, job_id))


@router.post("/{job_id}/cancel", status_code=202, response_model=JobOut,
             summary="Cancel a job (queued: at once; running: at the worker's next check)",
             responses=problem_responses(401, 404, 409, 422, 500))
def cancel_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> JobOut:
    return service.job_out(service.cancel_job(session, tenant, job_id))


@router.delete("/{job_id}", status_code=204, summary="Cancel if unfinished, then delete the job",
               responses=problem_responses(401, 404, 422, 500))
def delete_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> Response:
    service.delete_job(session, tenant, job_id)
    return Response(status_code=204)


@router.get(
    "/{job_id}/events",
    summary="Server-sent events: progress until the job ends",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "`event: progress|state|end`, `id:` the step; honours Last-Event-ID"},
               **problem_responses(401, 404, 422, 500)},
)
async def job_events(job_id: str, request: Request, runtime: RuntimeDep, tenant: CurrentTenant,
                     last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None
                     ) -> StreamingResponse:
    await events.check_visible(runtime, tenant, job_id)
    stream = events.job_event_stream(runtime, request, tenant.id, job_id, _last_step(last_event_id))
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise Unprocessable("label filters are key=value.", errors=[{"parameter": "label", "detail": f"{pair!r} is not key=value"}])
        labels[key] = value
    return labels


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Unprocessable(f"{name} needs a timezone (e.g. 2026-01-01T00:00:00Z).",
                            errors=[{"parameter": name, "detail": "timezone required"}])
    if value is None:
        return None
    try:
        # Compared in UTC: 9999-12-31T23:59:59-23:59 is past datetime.max there.
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise Unprocessable(f"{name} is outside the representable range once converted to UTC.",
                            errors=[{"parameter": name, "detail": "out of range in UTC"}]) from None


def _last_step(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


assert set(JOB_STATES) == set(JobStateName.__args__)  # keep the two spellings in step
