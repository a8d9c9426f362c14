"""Jobs: submission (idempotency, quotas, dry run, commit-then-publish), reads, cancel, delete.

Submission order, and why. No database connection or transaction is held across the
dry run or across any await: each database step is a short session of its own, run in
one threadpool call, and the only lock the submit takes (the tenant's counter row) is
held by one short write transaction that waits for nothing else.

1. Steps quota (403), no I/O.
2. ``Idempotency-Key``: claimed with ``INSERT ... ON CONFLICT DO NOTHING`` and committed
   at once (``store.repositories.idempotency``). A key bound to a job replays it (same
   body) or is a 409 ``idempotency-key-reused`` (other body); a key claimed by a request
   still in flight is waited on for ``api.idempotency_wait_s``, then 409
   ``request-in-progress`` with ``Retry-After``.
3. Data (inline arrays, a dataset of this tenant, or a catalog model's example data),
   decoded, checked and encoded; a quick read of the concurrent-jobs count (fail fast
   with 429 before the dry run).
4. Dry run in the process pool (``api.dryrun``): compile, bind, trace model and guide
   once. A job that cannot run on its data is refused with 422 here, never queued.
5. One short transaction: the dataset row (content-addressed), the concurrent-jobs slot
   (one guarded UPDATE on the tenant's counter: ``TenantRepository.take_job_slot``), the
   job row and the idempotency key's binding. Then, after the commit, the job id is
   published. If publishing fails the job stays ``queued`` and the sweeper publishes it.

A refused submission gives its idempotency claim back, so the key may be used again.
Database errors surface as 503 (``api.errors``), never as a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import dryrun
from api.datasets import service as datasets_service
from api.errors import (
    Conflict,
    DryRunTimeout,
    IdempotencyKeyReused,
    InvalidPageToken,
    JobNotCancellable,
    JobNotFound,
    QuotaExceeded,
    ServiceUnavailable,
    TooManyConcurrentJobs,
    TooManyTrialRuns,
    Unprocessable,
    VihubError,
    inference_problem,
)
from api.ids import is_resource_id
from api.jobs.schemas import JobCreate, JobLinks, JobList, JobOut, Progress
from api.runtime import Runtime, TenantRef
from api.warm_start.checks import check_init_from
from api.webhooks.service import check_webhook_url
from common.arrays import EncodedArrays
from common.settings import Settings
from store.job_states import FINAL_STATES, JobState
from store.models import Job, utcnow
from store.repositories.datasets import DatasetRepository
from store.repositories.idempotency import IdempotencyRepository
from store.repositories.jobs import InvalidPageToken as StoreInvalidPageToken
from store.repositories.jobs import JobFilters, JobRepository
from store.repositories.tenants import TenantRepository

log = logging.getLogger("vihub.api.jobs")

# What a duplicate of a request still in flight is told once it has waited
# ``api.idempotency_wait_s`` for that request's job.
IN_PROGRESS_RETRY_AFTER_S = 2
TOO_MANY_RETRY_AFTER_S = 10


class RequestInProgress(Conflict):
    """A request with this Idempotency-Key is still being processed."""

    slug, title = "request-in-progress", "A request with this Idempotency-Key is in progress"


# ---------------------------------------------------------------------------------------
# Submission


async def create_job(
    runtime: Runtime,
    tenant: TenantRef,
    body: JobCreate,
    idempotency_key: str | None,
) -> tuple[JobOut, bool]:
    """Returns ``(job, created)``; ``created`` is False for an idempotent replay."""
    settings = runtime.settings
    check_steps(settings, body)
    check_spec_bytes(settings, body)
    fingerprint = body_fingerprint(body)
    token: str | None = None
    if idempotency_key:
        replay, token = await _claim_idempotency_key(runtime, tenant, idempotency_key, fingerprint)
        if replay is not None:
            return replay, False
    try:
        out, queue = await _submit(runtime, tenant, body, idempotency_key, token, fingerprint)
    except _ClaimLost:
        # Our claim went stale and another request took the key over meanwhile.
        replay, _ = await _claim_idempotency_key(runtime, tenant, idempotency_key or "", fingerprint,
                                                 claim=False)
        if replay is None:
            raise request_in_progress(idempotency_key or "") from None
        return replay, False
    except BaseException:
        if token is not None:
            await _release_claim(runtime, tenant, idempotency_key or "", token)
        raise
    if out is None:  # the unique constraint on jobs caught a duplicate (rolling upgrade)
        if token is not None:
            await _release_claim(runtime, tenant, idempotency_key or "", token)
        replay = await run_in_threadpool(_replay_from_jobs, runtime, tenant, idempotency_key or "", fingerprint)
        return replay, False
    # Shielded: a client that hangs up now does not stop the publish of a committed job
    # (the sweeper would publish it, but only after worker.requeue_after_s).
    await asyncio.shield(run_in_threadpool(publish_job, runtime, out.id, queue))
    return out, True


class _ClaimLost(Exception):
    pass


async def _submit(runtime: Runtime, tenant: TenantRef, body: JobCreate, key: str | None, token: str | None,
                  fingerprint: str) -> tuple[JobOut | None, str]:
    settings = runtime.settings
    if body.webhook is not None:
        # May resolve the host name: off the event loop.
        await run_in_threadpool(check_webhook_url, settings, str(body.webhook.url))
    if body.inference.init_from is not None:
        await run_in_threadpool(check_init_from, runtime, tenant, body)
    fields, dataset_id = await run_in_threadpool(resolve_data, runtime, tenant, body)
    await run_in_threadpool(_precheck_concurrency, runtime, tenant)
    await run_dry_run(runtime, body, fields, tenant)
    encoded = None if dataset_id is not None else await run_in_threadpool(datasets_service.encode_fields, settings, fields)
    return await run_in_threadpool(_write_job, runtime, tenant, body, encoded, dataset_id, key, token, fingerprint)


def trial_runs_busy(runtime: Runtime) -> TooManyTrialRuns:
    share = runtime.dry_runs.per_tenant
    return TooManyTrialRuns(
        f"{share} trial run(s) of yours (submission dry runs, validations, predictions) are still "
        "running on this server; retry when one has finished.",
        headers={"Retry-After": "5"}, limit=share,
    )


async def run_dry_run(runtime: Runtime, body: JobCreate, fields: dict[str, Any],
                      tenant: TenantRef | None = None) -> dict[str, Any]:
    """``dry_run`` on its own executor, bounded by the pool's queue wait + time limit
    (a 503 when the wait for a free dry-run process is longer)."""
    pool = runtime.dry_runs
    cache = runtime.dry_run_cache
    key = dry_run_key(tenant, body, fields, dataclasses.asdict(runtime.settings.limits))
    cached = cache.get(key)
    if cached is not None:
        return cached
    bound = pool.time_limit_s + pool.queue_wait_s
    async with _tenant_turn(runtime, tenant):
        future = asyncio.get_running_loop().run_in_executor(runtime.dry_run_executor, dry_run, runtime, body,
                                                            fields, tenant)
        try:
            report = await asyncio.wait_for(future, timeout=bound)
        except asyncio.TimeoutError as exc:
            raise ServiceUnavailable(
                "The trial-run pool is busy; retry shortly.", headers={"Retry-After": "5"}
            ) from exc
    cache.put(key, report)
    return report


def dry_run_key(tenant: TenantRef | None, body: JobCreate, fields: dict[str, Any],
                limits: dict[str, Any]) -> str:
    """What a passed dry run depends on: the tenant, everything in the spec but the run's
    length and outputs, the data's schema (names, shapes, dtypes) — not its values — and
    the operator's language limits it was checked under.

    A job that differs only in ``steps``, ``seed``, outputs, labels or webhook, on data of
    the same shape, is not traced again (the usual resubmission: more steps, another seed).
    Data-dependent failures that the shapes do not show surface in the worker instead, as
    a failed job with the same problem.
    """
    spec = body.spec().model_dump(mode="json")
    inference_part = {k: v for k, v in (spec.get("inference") or {}).items()
                      if k not in ("steps", "seed", "progress_every_steps", "progress_every_s",
                                   "checkpoint_every_s")}
    schema = {name: [list(getattr(v, "shape", ())), str(getattr(v, "dtype", type(v).__name__))]
              for name, v in sorted(fields.items())}
    canonical = json.dumps({"tenant": None if tenant is None else tenant.id, "model": spec.get("model"),
                            "guide": spec.get("guide"), "inference": inference_part, "data": schema,
                            "limits": limits},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@contextlib.asynccontextmanager
async def _tenant_turn(runtime: Runtime, tenant: TenantRef | None) -> AsyncIterator[None]:
    """Wait, holding no thread, until this tenant may start another trial run.

    A tenant's submissions queue behind each other here, on the event loop, so a burst
    from one tenant never fills the dry-run executor or every pool slot while another
    tenant's submission waits (``api.dry_run_per_tenant`` at a time per API process).
    """
    if tenant is None:
        yield
        return
    gates = runtime.tenant_gates
    gate = gates.get(tenant.id)
    if gate is None:
        gate = gates[tenant.id] = asyncio.Semaphore(runtime.dry_runs.per_tenant)
    try:
        await asyncio.wait_for(gate.acquire(), timeout=runtime.dry_runs.queue_wait_s)
    except asyncio.TimeoutError as exc:
        raise trial_runs_busy(runtime) from exc
    try:
        yield
    finally:
        gate.release()


def resolve_data(runtime: Runtime, tenant: TenantRef, body: JobCreate) -> tuple[dict[str, Any], str | None]:
    """``(fields, dataset_id)`` of a body's data (inline, dataset id or catalog example);
    ``dataset_id`` is None for inline data, stored with the job. Also used by sweeps."""
    with runtime.sessionmaker() as session:
        return datasets_service.resolve_job_data(session, tenant, body, runtime.settings)


def _precheck_concurrency(runtime: Runtime, tenant: TenantRef) -> None:
    # Fail fast before the dry run; the guarded UPDATE in _write_job is what enforces it.
    with runtime.sessionmaker() as session:
        check_concurrency(JobRepository(session), runtime.settings, tenant)


def _write_job(runtime: Runtime, tenant: TenantRef, body: JobCreate, encoded: EncodedArrays | None,
               dataset_id: str | None, key: str | None, token: str | None,
               fingerprint: str) -> tuple[JobOut | None, str]:
    """The one write transaction of a submit: short, no I/O but the database's.

    Lock order (the same in every writer, so no deadlock): dataset row, tenant row (the
    counter), new job row, idempotency row.
    """
    settings = runtime.settings
    limit = settings.quotas.max_concurrent_jobs
    queue = queue_for(body)
    with runtime.sessionmaker() as session:
        try:
            if dataset_id is None:
                assert encoded is not None  # inline data is encoded before the write
                dataset_id = store_inline_data(session, tenant, encoded)
            if not take_job_slots(session, tenant, limit):
                session.commit()  # keep the dataset and the recount; the refusal is final
                raise _too_many(limit)
            job = JobRepository(session).create(
                tenant_id=tenant.id,
                spec=body.spec().model_dump(mode="json"),
                dataset_id=dataset_id,
                labels=dict(body.labels),
                webhook=body.webhook.model_dump(mode="json") if body.webhook else None,
                idempotency_key=key,
                request_fingerprint=fingerprint if key else None,
                queue=queue,
                max_attempts=settings.worker.max_attempts,
            )
            if key and token and not IdempotencyRepository(session).complete(tenant.id, key, token, job.id):
                session.rollback()
                raise _ClaimLost()
            session.commit()
        except IntegrityError:
            session.rollback()
            if not key:
                raise
            return None, queue
        except BaseException:
            session.rollback()
            raise
        return job_out(job), queue


def store_inline_data(session: Session, tenant: TenantRef, encoded: EncodedArrays) -> str:
    """The id of the tenant's dataset holding these inline arrays (made once per content);
    first in a submit's (and a sweep's) transaction, for the lock order."""
    dataset, _ = DatasetRepository(session).get_or_create(
        tenant.id, encoded.sha256, encoded.content, encoded.fields, "inline", name=None)
    return dataset.id


def take_job_slots(session: Session, tenant: TenantRef, limit: int, count: int = 1) -> bool:
    """Take ``count`` of the tenant's concurrent-job slots in this transaction (False, with
    some maybe taken, when they do not all fit: the caller rolls back or refuses).

    The counter is an upper bound (a job may have ended in a way that did not give its
    slot back, e.g. under a previous release's worker): a refused first slot recounts once.
    """
    tenants = TenantRepository(session)
    for taken in range(count):
        if tenants.take_job_slot(tenant.id, limit):
            continue
        if taken == 0:
            tenants.recount_active_jobs(tenant.id)
            if tenants.take_job_slot(tenant.id, limit):
                continue
        return False
    return True


def publish_job(runtime: Runtime, job_id: str, queue: str) -> None:
    """Publish a committed job (never before the commit) and record when; also used by sweeps."""
    ok = runtime.publisher.publish(job_id, queue)
    runtime.metrics.jobs_published.labels("ok" if ok else "failed").inc()
    if ok:
        _mark_published(runtime, job_id)


async def _claim_idempotency_key(runtime: Runtime, tenant: TenantRef, key: str, fingerprint: str, *,
                                 claim: bool = True) -> tuple[JobOut | None, str | None]:
    """``(replay, None)`` for a key bound to a job with this body, ``(None, token)`` when
    this request now owns the key; raises 409 otherwise. Waits (without holding anything)
    while another request owns it."""
    wait_s = runtime.settings.api.idempotency_wait_s
    deadline = time.monotonic() + wait_s
    delay = 0.02
    token = str(uuid.uuid4())
    while True:
        outcome, value = await run_in_threadpool(_try_claim, runtime, tenant, key, fingerprint, token, claim)
        if outcome == "claimed":
            return None, token
        if outcome == "replay":
            return value, None
        if time.monotonic() + delay > deadline:
            raise request_in_progress(key)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.25)


def _claim_stale_after_s(runtime: Runtime) -> float:
    # Longer than any submission can take (dry-run wait + run, plus margin): a claim this
    # old belongs to a request that died between its claim and its commit.
    pool = runtime.dry_runs
    return pool.time_limit_s + pool.queue_wait_s + 30.0


def _try_claim(runtime: Runtime, tenant: TenantRef, key: str, fingerprint: str, token: str,
               claim: bool) -> tuple[str, Any]:
    now = utcnow()
    with runtime.sessionmaker.begin() as session:
        keys = IdempotencyRepository(session)
        if claim and keys.claim(tenant.id, key, fingerprint, token, now=now):
            return "claimed", token
        record = keys.get(tenant.id, key)
        if record is None:
            # Released between our insert and our read: try again at once.
            return "pending", None
        if record.job_id is not None:
            job = JobRepository(session).get(record.job_id)
            if job is None:
                return "pending", None
            return "replay", job_out(_replay(job, fingerprint, key))
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} is in use by a request with a different body; "
                "use a new key for a new job.")
        stale_before = now - timedelta(seconds=_claim_stale_after_s(runtime))
        if claim and keys.take_over_stale(tenant.id, key, fingerprint, token, stale_before, now=now):
            return "claimed", token
        return "pending", None


async def _release_claim(runtime: Runtime, tenant: TenantRef, key: str, token: str) -> None:
    try:
        await run_in_threadpool(_release_claim_sync, runtime, tenant, key, token)
    except Exception:  # the claim goes stale and is taken over; never mask the real error
        log.warning("could not release Idempotency-Key claim %r", key, exc_info=True)


def _release_claim_sync(runtime: Runtime, tenant: TenantRef, key: str, token: str) -> None:
    with runtime.sessionmaker.begin() as session:
        IdempotencyRepository(session).release(tenant.id, key, token)


def _replay_from_jobs(runtime: Runtime, tenant: TenantRef, key: str, fingerprint: str) -> JobOut:
    with runtime.sessionmaker() as session:
        existing = JobRepository(session).get_by_idempotency_key(tenant.id, key)
        if existing is None:
            raise request_in_progress(key)
        return job_out(_replay(existing, fingerprint, key))


def request_in_progress(key: str) -> VihubError:
    """409 ``request-in-progress`` for a key whose request has not finished (jobs and sweeps)."""
    return RequestInProgress(
        f"A request with Idempotency-Key {key!r} is still being processed; retry shortly "
        "to get its job.", headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER_S)})


def _too_many(limit: int, active: int | None = None) -> VihubError:
    counted = f"{active} jobs are" if active is not None else "As many jobs as allowed are"
    return TooManyConcurrentJobs(
        f"{counted} queued or running; the limit is {limit}. Retry when one has finished.",
        headers={"Retry-After": str(TOO_MANY_RETRY_AFTER_S)},
        limit=limit,
    )


def _replay(existing: Job, fingerprint: str, key: str) -> Job:
    if existing.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was first used with a different request body "
            f"(job {existing.id}); use a new key for a new job.",
            job_id=existing.id,
        )
    return existing


def _mark_published(runtime: Runtime, job_id: str) -> None:
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


def check_steps(settings: Settings, body: JobCreate) -> None:
    quotas = settings.quotas
    if body.inference.steps > quotas.max_steps:
        raise QuotaExceeded(
            f"inference.steps={body.inference.steps} exceeds this tenant's limit of {quotas.max_steps} steps.",
            pointer="/inference/steps",
            limit=quotas.max_steps,
        )
    threads = body.inference.num_threads
    if threads is not None and threads > quotas.max_threads_per_job:
        # A job may not take every core of a shared worker host.
        raise QuotaExceeded(
            f"inference.num_threads={threads} exceeds this tenant's limit of {quotas.max_threads_per_job}.",
            pointer="/inference/num_threads",
            limit=quotas.max_threads_per_job,
        )


# Beyond the model and guide sources (each bounded by limits.max_source_bytes), a spec is
# names and a few numbers; free-form ``options`` objects are only checked by the engine
# when the job runs, so without this bound a spec could be as large as the upload limit,
# stored per job (and per sweep member, per continuation) and rendered by every job list.
SPEC_EXTRA_BYTES = 256 * 1024


def check_spec_bytes(settings: Settings, body: JobCreate) -> None:
    limit = 2 * int(settings.limits.max_source_bytes) + SPEC_EXTRA_BYTES
    size = len(json.dumps(body.spec().model_dump(mode="json"), separators=(",", ":")))
    if size > limit:
        raise QuotaExceeded(
            f"The job spec (model, guide, inference, outputs) is {size} bytes of JSON; at most {limit} "
            "(two sources of limits.max_source_bytes and 256 KiB for the rest).", limit=limit, bytes=size)


def check_concurrency(jobs: JobRepository, settings: Settings, tenant: TenantRef) -> None:
    limit = settings.quotas.max_concurrent_jobs
    active = jobs.count_active_for_tenant(tenant.id)
    if active >= limit:
        raise _too_many(limit, active)


def dry_run(runtime: Runtime, body: JobCreate, fields: dict[str, Any], tenant: TenantRef | None = None,
            ) -> dict[str, Any]:
    """Run the validation pass in the pool; the report on success, a 4xx/5xx otherwise."""
    spec = body.spec().model_dump(mode="json")
    try:
        limits = dataclasses.asdict(runtime.settings.limits)
        outcome = runtime.dry_runs.run(dryrun.dry_run, spec, fields, limits,
                                       tenant=None if tenant is None else tenant.id)
    except dryrun.DryRunTenantBusy as exc:
        raise trial_runs_busy(runtime) from exc
    except dryrun.DryRunTimedOut as exc:
        raise DryRunTimeout(_timeout_detail(runtime)) from exc
    except dryrun.DryRunUnavailable as exc:
        raise ServiceUnavailable(
            "The trial-run pool is busy or restarting; retry shortly.", headers={"Retry-After": "5"}
        ) from exc
    if outcome.get("ok"):
        report = outcome.get("report") or {}
        _refuse_odd_text(report)
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


def _refuse_odd_text(report: dict[str, Any]) -> None:
    """A model can make strings the body never held (``"w\\ud800"`` in its source is plain
    ASCII in JSON): site and parameter names, printed lines. One with NUL or a lone
    surrogate could be neither stored (Postgres, UTF-8) nor sent back, so the job is
    refused here, before it is queued (422 dry-run-failed, ``report_pointer`` says where)."""
    from api.hardening import find_bad_text

    found = find_bad_text(report)
    if found is not None:
        where, what = found
        exc = _dry_run_failed(
            f"The dry run produced text that is not valid Unicode or holds NUL ({what} at {where} of the "
            "validation report: a site or parameter name, a printed line, a message); use plain text."
        )
        exc.extra["report_pointer"] = where
        raise exc


def _timeout_detail(runtime: Runtime) -> str:
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
    job = JobRepository(session).get_for_tenant(tenant.id, job_id) if is_resource_id(job_id) else None
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
    page_size: int,
) -> JobList:
    filters = JobFilters(states=states or None, labels=labels or None,
                         created_after=created_after, created_before=created_before)
    try:
        page = JobRepository(session).list_for_tenant(tenant.id, filters, page_token=page_token, limit=page_size)
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


def job_progress(progress: dict[str, Any] | None, spec_steps: int | None) -> Progress:
    """A job's progress as rendered: what the worker reported, ``steps`` from the spec
    until it has (also used by sweep summaries, which read the columns only)."""
    fields = {"steps": int(spec_steps or 0), "step": 0, **(progress or {})}
    return Progress.model_validate({k: v for k, v in fields.items() if k in Progress.model_fields})


def job_out(job: Job) -> JobOut:
    spec = job.spec or {}
    base = f"/v1/jobs/{job.id}"
    return JobOut(
        id=job.id,
        state=job.state,
        progress=job_progress(job.progress, (spec.get("inference") or {}).get("steps")),
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
