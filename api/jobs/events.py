"""Server-sent events of a job's progress, polled from the database.

The database is the source of truth and the worker writes progress there in batches, so
the stream polls the job row (every ``options.sse_poll_s``, default 0.5 s) with a short
session per poll — no session is held open for the life of a stream. While the job may
end sooner than that — during the first ``sse_fast_window_s`` of the stream (a short
job's whole life), or when its last progress report's ETA is within one slow poll — it
polls every ``sse_fast_poll_s`` instead (``next_poll_s``), so a waiting client sees the
end within ~0.05 s without every long-running stream polling that often. Events:

- ``event: state`` when the state changes (``data`` is the job JSON),
- ``event: progress`` when the step advances (``id:`` is the step, so a client that
  reconnects with ``Last-Event-ID`` gets only newer progress),
- ``event: end`` once the job is final (or deleted); then the stream closes.

Comments (``: keep-alive``) are sent every 15 s so proxies keep the connection open.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from api.errors import JobNotFound
from api.ids import is_resource_id
from api.runtime import Runtime, TenantRef
from store.job_states import is_final
from store.repositories.jobs import JobRepository

KEEPALIVE_S = 15.0


def _snapshot(runtime: Runtime, tenant_id: str, job_id: str) -> dict[str, Any] | None:
    from api.jobs.service import job_out

    with runtime.sessionmaker() as session:
        job = JobRepository(session).get_for_tenant(tenant_id, job_id) if is_resource_id(job_id) else None
        return job_out(job).model_dump(mode="json") if job is not None else None


async def check_visible(runtime: Runtime, tenant: TenantRef, job_id: str) -> None:
    if await run_in_threadpool(_snapshot, runtime, tenant.id, job_id) is None:
        raise JobNotFound(f"No job {job_id!r} in this account.")


def next_poll_s(options: Any, job: dict[str, Any], stream_age_s: float, report_age_s: float) -> float:
    """Seconds until the next look at the job row: ``sse_fast_poll_s`` while its end may
    come before one ``sse_poll_s`` (``stream_age_s`` within ``sse_fast_window_s``, or the
    ETA of a progress report seen ``report_age_s`` ago nearly run out), else ``sse_poll_s``.
    A job still running a few slow polls past its ETA (the estimate was wrong, or the
    worker stopped reporting) is polled slowly again."""
    slow, fast = options.sse_poll_s, min(options.sse_fast_poll_s, options.sse_poll_s)
    if stream_age_s < options.sse_fast_window_s:
        return fast
    eta = (job.get("progress") or {}).get("eta_s")
    if job.get("state") == "running" and eta is not None and -4 * slow <= eta - report_age_s <= slow:
        return fast
    return slow


def format_event(event: str, data: Any, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


async def job_event_stream(runtime: Runtime, request: Request, tenant_id: str, job_id: str,
                           last_step: int | None) -> AsyncIterator[str]:
    options = runtime.settings.api
    # Step 0 is in the first `state` event already; progress events start at step 1.
    sent_step = last_step if last_step is not None else 0
    sent_state: str | None = None
    started = last_write = last_report = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        if await request.is_disconnected():
            return
        job = await run_in_threadpool(_snapshot, runtime, tenant_id, job_id)
        if job is None:
            yield format_event("end", {"id": job_id, "state": "deleted"})
            return
        step = int(job["progress"].get("step") or 0)
        if job["state"] != sent_state:
            sent_state = job["state"]
            yield format_event("state", job, step)
            last_write = time.monotonic()
        if step > sent_step:
            sent_step = step
            last_report = time.monotonic()
            yield format_event("progress", {"id": job_id, "state": job["state"], **job["progress"]}, step)
            last_write = time.monotonic()
        if is_final(job["state"]):
            yield format_event("end", {"id": job_id, "state": job["state"], "error": job["error"]}, step)
            return
        now = time.monotonic()
        if now - started > options.sse_max_s:
            return  # the client reconnects with Last-Event-ID
        if now - last_write > KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_write = now
        await asyncio.sleep(next_poll_s(options, job, now - started, now - last_report))
