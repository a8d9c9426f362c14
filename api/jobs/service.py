"""Jobs: submission (idempotency, quotas, dry run, commit-then-publish), reads, cancel, delete.

Submission order, and why:

1. ``Idempotency-Key``: a key seen before with the same body returns that job (no second
   job, no second publish); with another body it is a 409.
2. Quotas: steps (403) and concurrent unfinished jobs (429, ``Retry-After``).
3. Data: inline arrays, a dataset of this tenant, or a catalog model's example data —
   decoded and checked (shapes, numbers only, no NaN) with pointers into the body.
4. Dry run in the process pool (``api.dryrun``): compile, bind, trace model and guide
   once. A job that cannot run on its data is refused with 422 here, never queued.
5. The data is stored as a content-addressed dataset (so the worker always reads
   ``job.dataset_id``), the job row is added and flushed, and the publish is registered
   to run *after* the request's commit. If publishing fails the job stays ``queued`` and
   the worker's sweeper republishes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import dryrun
from api.datasets import service as datasets_service
from api.deps import TenantRef, after_commit
from api.errors import (
    DryRunTimeout,
    IdempotencyKeyReused,
    InvalidPageToken,
    JobNotCancellable,
    JobNotFound,
    QuotaExceeded,
    ServiceUnavailable,
    TooManyConcurrentJobs,
    Unprocessable,
    VihubError,
    inference_problem,
)
from api.jobs.schemas import JobCreate, JobLinks, JobList, JobOut, Progress
from api.webhooks.service import check_webhook_url
from store.job_states import FINAL_STATES, JobState
from store.models import Job
from store.repositories.jobs import InvalidPageToken as StoreInvalidPageToken
from store.repositories.jobs import JobFilters, JobRepository
from store.repositories.tenants import TenantRepository

log = logging.getLogger("vihub.api.jobs")


# ---------------------------------------------------------------------------------------
# Submission


def create_job(
    session: Session,
    runtime: Any,
    tenant: TenantRef,
    body: JobCreate,
    idempotency_key: str | None,
) -> tuple[Job, bool]:
    """Returns ``(job, created)``; ``created`` is False for an idempotent replay."""
    jobs = JobRepository(session)
    fingerprint = body_fingerprint(body)
    if idempotency_key:
        existing = jobs.get_by_idempotency_key(tenant.id, idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint, idempotency_key), False

    check_quotas(jobs, runtime.settings, tenant, body)
    check_webhook_url(runtime.settings, str(body.webhook.url) if body.webhook else None)
    fields, dataset_id = datasets_service.resolve_job_data(session, tenant, body)
    dry_run(runtime, body, fields)
    if dataset_id is None:
        dataset_id = datasets_service.store_fields(
            session, runtime.settings, tenant, fields, fmt="inline", name=None
        ).id

    queue = queue_for(body)
    values = dict(
        tenant_id=tenant.id,
        spec=body.spec().model_dump(mode="json"),
        dataset_id=dataset_id,
        labels=dict(body.labels),
        webhook=body.webhook.model_dump(mode="json") if body.webhook else None,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint if idempotency_key else None,
        queue=queue,
        max_attempts=runtime.settings.worker.max_attempts,
    )
    # The quota was checked before the dry run (fail fast); check it again under the
    # tenant's lock, which is held until commit, so two simultaneous submits cannot both
    # take the last slot.
    TenantRepository(session).lock(tenant.id)
    check_concurrency(jobs, runtime.settings, tenant)
    try:
        with session.begin_nested():
            job = jobs.create(**values)
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key won the insert.
        existing = jobs.get_by_idempotency_key(tenant.id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, fingerprint, idempotency_key or ""), False

    job_id = job.id

    def publish() -> None:
        ok = runtime.publisher.publish(job_id, queue)
        runtime.metrics.jobs_published.labels("ok" if ok else "failed").inc()
        if ok:
            _mark_published(runtime, job_id)

    after_commit(session, publish)
    return job, True


def _replay(existing: Job, fingerprint: str, key: str) -> Job:
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was first used with a different request body "
            f"(job {existing.id}); use a new key for a new job.",
            job_id=existing.id,
        )
    return existing


def _mark_published(runtime: Any, job_id: str) -> None:
    try:
        with runtime.sessionmaker.begin() as session:
            JobRepository(session).mark_published(job_id)
    except Exception:  # the sweeper falls back on queued_at; a missed mark only delays it
        log.warning("could not record publish time of job %s", job_id, exc_info=True)


def body_fingerprint(body: JobCreate) -> str:
    """sha256 of the parsed body in canonical JSON (key order and whitespace don't matter)."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def queue_for(body: JobCreate) -> str:
    # "auto" runs wherever a worker takes it; the cpu queue is the one always served.
    return "gpu" if body.inference.device == "cuda" else "cpu"


def check_quotas(jobs: JobRepository, settings: Any, tenant: TenantRef, body: JobCreate) -> None:
    quotas = settings.quotas
    if body.inference.steps > quotas.max_steps:
        raise QuotaExceeded(
            f"inference.steps={body.inference.steps} exceeds this tenant's limit of {quotas.max_steps} steps.",
            pointer="/inference/steps",
            limit=quotas.max_steps,
        )
    check_concurrency(jobs, settings, tenant)


def check_concurrency(jobs: JobRepository, settings: Any, tenant: TenantRef) -> None:
    quotas = settings.quotas
    active = jobs.count_active_for_tenant(tenant.id)
    if active >= quotas.max_concurrent_jobs:
        raise TooManyConcurrentJobs(
            f"{active} jobs are queued or running; the limit is {quotas.max_concurrent_jobs}. "
            "Retry when one has finished.",
            headers={"Retry-After": "10"},
            limit=quotas.max_concurrent_jobs,
        )


def dry_run(runtime: Any, body: JobCreate, fields: dict[str, Any]) -> dict[str, Any]:
    """Run the validation pass in the pool; the report on success, a 4xx/5xx otherwise."""
    spec = body.spec().model_dump(mode="json")
    try:
        limits = runtime.settings.limits.model_dump()
        outcome = runtime.dry_runs.run(dryrun.dry_run, spec, fields, limits)
    except dryrun.DryRunTimedOut as exc:
        raise DryRunTimeout(_timeout_detail(runtime)) from exc
    except dryrun.DryRunUnavailable as exc:
        raise ServiceUnavailable(
            "The trial-run pool is busy or restarting; retry shortly.", headers={"Retry-After": "5"}
        ) from exc
    if outcome.get("ok"):
        report = outcome.get("report") or {}
        failed = _report_failed(report)
        if failed:
            raise _validation_failed(failed, report)
        return report
    if outcome.get("timeout"):
        raise DryRunTimeout(_timeout_detail(runtime))
    if outcome.get("internal"):
        log.warning("dry run failed outside the library's error hierarchy:\n%s", outcome.get("message"))
        last = (outcome.get("message") or "").strip().splitlines()[-1:] or ["unknown error"]
        raise _dry_run_failed(last[0])
    raise map_inference_error(outcome.get("error") or {}, body)


def _timeout_detail(runtime: Any) -> str:
    return (
        f"Compiling the model and tracing it once on the data took longer than "
        f"{runtime.dry_runs.time_limit_s:g} s."
    )


def _validation_failed(detail: str, report: dict[str, Any]) -> VihubError:
    exc = Unprocessable(detail, report=report)
    exc.slug, exc.title = "validation-failed", "The model and guide do not fit together on this data"
    return exc


def _dry_run_failed(detail: str) -> VihubError:
    exc = Unprocessable(f"The model failed when run once on the data: {detail}")
    exc.slug, exc.title = "dry-run-failed", "The model failed on the data"
    return exc


def _report_failed(report: dict[str, Any]) -> str | None:
    if not isinstance(report, dict):
        return None
    errors = report.get("errors")
    if report.get("ok") is False or (isinstance(errors, list) and errors):
        messages = [e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in errors or []]
        return "; ".join(messages) or "validation failed"
    return None


def map_inference_error(error: dict[str, Any], body: JobCreate) -> VihubError:
    """A library error (as a dict from the child) as a 422 with the right pointer."""
    error = dict(error)
    field = error.get("field")
    kind = str(error.get("kind", ""))
    data_base = _data_pointer(body)
    if isinstance(field, str) and ("data" in kind or "binding" in kind) and data_base:
        # Data-binding errors name a data field, not a spec path.
        error["pointer"] = f"{data_base}/{field}"
        error.pop("field", None)
    return inference_problem(error, source_pointer="/model/source")


def _data_pointer(body: JobCreate) -> str | None:
    if body.data is None:
        return None
    return "/data/inline" if hasattr(body.data, "inline") else "/data/dataset_id"


# ---------------------------------------------------------------------------------------
# Reads and changes


def get_job(session: Session, tenant: TenantRef, job_id: str) -> Job:
    job = JobRepository(session).get_for_tenant(tenant.id, job_id)
    if job is None:
        # Another tenant's job is indistinguishable from a missing one.
        raise JobNotFound(f"No job {job_id!r} in this account.")
    return job


def list_jobs(
    session: Session,
    tenant: TenantRef,
    *,
    states: list[str] | None,
    labels: dict[str, str],
    created_after: Any,
    created_before: Any,
    page_token: str | None,
    limit: int,
) -> JobList:
    filters = JobFilters(states=states or None, labels=labels or None,
                         created_after=created_after, created_before=created_before)
    try:
        page = JobRepository(session).list_for_tenant(tenant.id, filters, page_token=page_token, limit=limit)
    except StoreInvalidPageToken as exc:
        raise InvalidPageToken("page_token is not a token this API issued.", parameter="page_token") from exc
    return JobList(items=[job_out(job) for job in page.items], next_page_token=page.next_page_token)


def cancel_job(session: Session, tenant: TenantRef, job_id: str) -> Job:
    job = get_job(session, tenant, job_id)
    if JobState(job.state) in FINAL_STATES:
        if job.state == JobState.CANCELLED.value:
            return job  # cancelling twice is harmless
        raise JobNotCancellable(f"Job {job_id} already {job.state}; nothing to cancel.", state=job.state)
    updated = JobRepository(session).request_cancel(job.id)
    return updated or job


def delete_job(session: Session, tenant: TenantRef, job_id: str) -> None:
    job = get_job(session, tenant, job_id)
    if JobState(job.state) not in FINAL_STATES:
        # A running worker sees cancel_requested and stops; the row stays for it to finish.
        JobRepository(session).request_cancel(job.id)
    JobRepository(session).soft_delete(tenant.id, job.id)


def count_by_state(session: Session) -> dict[str, int]:
    counts = JobRepository(session).count_by_state()
    return {state.value: counts.get(state.value, 0) for state in JobState}


# ---------------------------------------------------------------------------------------
# Rendering


def job_out(job: Job) -> JobOut:
    spec = job.spec or {}
    steps = int(((spec.get("inference") or {}).get("steps")) or 0)
    progress = dict(job.progress or {})
    progress.setdefault("steps", steps)
    progress.setdefault("step", 0)
    base = f"/v1/jobs/{job.id}"
    return JobOut(
        id=job.id,
        state=job.state,
        progress=Progress.model_validate({k: v for k, v in progress.items() if k in Progress.model_fields}),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        attempts=job.attempts,
        queue=job.queue,
        labels=job.labels or {},
        dataset_id=job.dataset_id,
        model=spec.get("model") or {},
        spec=spec,
        links=JobLinks(
            self=base, events=f"{base}/events", cancel=f"{base}/cancel", params=f"{base}/params",
            loss=f"{base}/loss", samples=f"{base}/samples", log_probs=f"{base}/log-probs",
            diagnostics=f"{base}/diagnostics", summary=f"{base}/summary", predict=f"{base}/predict",
        ),
    )
