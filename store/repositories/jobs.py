"""Jobs: creation, lookups, listing, and every state transition.

Each transition is ONE guarded ``UPDATE ... WHERE id = ? AND state IN (...) ... RETURNING``
whose allowed source states come from ``store.job_states``; a transition that does not
match raises ``InvalidTransition`` (or ``LeaseLost``) or returns None/False as documented,
so concurrent callers (two workers, a worker and the sweeper, a cancel) never both win.

``JobRepository`` methods:

lookups
- ``create(**fields) -> Job`` — a new ``queued`` job (``queued_at`` = ``created_at``)
- ``get(job_id) -> Job | None`` — any tenant (worker/sweeper use)
- ``get_for_tenant(tenant_id, job_id) -> Job | None`` — None for another tenant's or a
  deleted job
- ``get_by_idempotency_key(tenant_id, key) -> Job | None``
- ``list_for_tenant(tenant_id, filters=None, page_token=None, limit=50) -> JobPage`` —
  newest first; ``JobPage.items``, ``JobPage.next_page_token`` (opaque keyset token:
  urlsafe base64 of ``[created_at, id]``; a bad token raises ``InvalidPageToken``)
- ``count_active_for_tenant(tenant_id) -> int`` — queued + running (concurrency quota)
- ``count_by_state() -> dict[str, int]`` — all tenants, not deleted (API metrics)
- ``is_cancel_requested(job_id) -> bool``

transitions (see ``store.job_states``)
- ``claim(job_id, worker_id, lease_seconds, now=None) -> Job | None`` — queued (or
  running with an expired lease) -> running, ``attempts += 1``, only while
  ``attempts < max_attempts``; None when another worker holds it, it is final,
  cancelled-in-flight, deleted, or out of attempts
- ``heartbeat(job_id, worker_id, lease_seconds, now=None) -> bool`` — extend the lease;
  False when this worker no longer holds the job
- ``record_progress(job_id, progress, new_losses, worker_id=None, lease_seconds=None) -> bool``
  — progress JSON + batched idempotent loss points (+ lease when ``lease_seconds``)
- ``finish(job_id, state, error=None, worker_id=None, now=None) -> Job`` — running ->
  succeeded|failed|cancelled (a cancel without an error gets ``cancelled_problem()``); raises ``InvalidTransition`` if not running, ``LeaseLost``
  if ``worker_id`` is given and another worker holds it
- ``request_cancel(job_id) -> Job | None`` — queued -> cancelled at once (error: the
  ``cancelled`` problem); running ->
  ``cancel_requested = True`` (the worker stops at its next check); final: no change
- ``release(job_id, worker_id) -> bool`` — running -> queued by the worker holding it
  (an internal error with attempts left: another attempt may succeed)
- ``requeue_expired(job_id, now=None) -> bool`` — running with an expired lease ->
  queued (reclaim; attempts left, no cancel requested)
- ``finish_expired(job_id, state, error=None, now=None) -> bool`` — running with an
  expired lease -> failed/cancelled (out of attempts / cancel requested)
- ``fail_queued(job_id, error, now=None) -> bool`` — queued -> failed (cannot run)
- ``mark_published(job_id, now=None)`` — remember when the id went to the broker
- ``soft_delete(tenant_id, job_id, now=None) -> bool`` — hide it (cancel it first)

Every transition out of queued/running also gives the tenant's concurrent-jobs slot back
(``TenantRepository.release_job_slot``) in the same transaction, exactly once (the
guarded UPDATE matched). Lock order: the job row, then the tenant row.

sweeper scans
- ``find_stuck_queued(older_than, limit=500) -> list[Job]`` — queued, not (re)published
  since ``older_than``
- ``find_unpublished_queued(older_than, limit=500) -> list[Job]`` — queued, never handed
  to the broker (the API's publish failed, or a release reset it), queued before
  ``older_than``
- ``find_published_queued(queue, limit=500) -> list[Job]`` — queued jobs of ``queue``
  already handed to the broker, least recently published first
- ``count_published_queued(queue) -> int``
- ``find_expired_leases(now=None, limit=500) -> list[Job]`` — running with a lease in
  the past
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, update

from store.job_states import (
    ACTIVE_STATES,
    FINAL_STATES,
    InvalidTransition,
    JobState,
    check_transition,
    sources_for,
)
from common import problems
from store.models import Job, UTCDateTime, utcnow
from store.repositories.base import Repository
from store.repositories.loss_points import LossPointRepository
from store.repositories.tenants import TenantRepository

CANCELLED_KIND = "cancelled"


def cancelled_problem(detail: str | None = None) -> dict[str, Any]:
    """The ``error`` of a cancelled job (docs/api.md: a cancelled job carries a problem)."""
    return problems.problem(CANCELLED_KIND, "Job cancelled",
                            detail or "The job was cancelled at the client's request.", status=409)


class LeaseLost(Exception):
    """The job is running under another worker (this worker's lease was reclaimed)."""

    kind = "lease-lost"


class InvalidPageToken(ValueError):
    """A page token that this repository did not issue."""

    kind = "invalid-page-token"


@dataclass
class JobFilters:
    states: Sequence[str] | None = None
    labels: dict[str, str] | None = None  # every key must equal the value
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass
class JobPage:
    items: list[Job]
    next_page_token: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def encode_page_token(created_at: datetime, job_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> tuple[datetime, str]:
    """``(created_at in UTC, job id)`` of a token; anything else raises ``InvalidPageToken``.

    Tokens are not signed (they only carry a position in the tenant's own list), so a
    forged one must decode to exactly what ``encode_page_token`` makes: a two-item list of
    an aware ISO timestamp (representable in UTC) and a canonical UUID -- never a value
    the database could choke on (NUL, lone surrogates, out-of-range datetimes).
    """
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        decoded = json.loads(raw)
        if not isinstance(decoded, list) or len(decoded) != 2 \
                or not all(isinstance(item, str) for item in decoded):
            raise ValueError("bad token")
        created_at_s, job_id = decoded
        created_at = datetime.fromisoformat(created_at_s)
        if created_at.tzinfo is None or len(job_id) != 36 or str(uuid.UUID(job_id)) != job_id:
            raise ValueError("bad token")
        return created_at.astimezone(timezone.utc), job_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError, RecursionError) as exc:
        raise InvalidPageToken("invalid page token") from exc


def _in(states: Iterable[JobState]) -> list[str]:
    return sorted(s.value for s in states)


class JobRepository(Repository[Job]):
    model = Job

    # ---- lookups -------------------------------------------------------------------

    def create(self, **fields: Any) -> Job:
        now = fields.pop("created_at", None) or utcnow()
        job = Job(
            state=JobState.QUEUED.value,
            created_at=now,
            queued_at=now,
            **fields,
        )
        return self.add(job)

    def get_for_tenant(self, tenant_id: str, job_id: str) -> Job | None:
        return self.session.scalar(
            select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id, Job.deleted_at.is_(None))
        )

    def get_by_idempotency_key(self, tenant_id: str, key: str) -> Job | None:
        return self.session.scalar(
            select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
        )

    def list_for_tenant(
        self,
        tenant_id: str,
        filters: JobFilters | None = None,
        page_token: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        stmt = select(Job).where(Job.tenant_id == tenant_id, Job.deleted_at.is_(None))
        f = filters or JobFilters()
        if f.states:
            stmt = stmt.where(Job.state.in_([JobState(s).value for s in f.states]))
        if f.queue:
            stmt = stmt.where(Job.queue == f.queue)
        if f.created_after:
            stmt = stmt.where(Job.created_at > f.created_after)
        if f.created_before:
            stmt = stmt.where(Job.created_at < f.created_before)
        for key, value in (f.labels or {}).items():
            stmt = stmt.where(Job.labels[key].as_string() == str(value))
        if page_token:
            created_at, last_id = decode_page_token(page_token)
            stmt = stmt.where(
                or_(
                    Job.created_at < created_at,
                    and_(Job.created_at == created_at, Job.id < last_id),
                )
            )
        stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        rows = list(self.session.scalars(stmt))
        next_token = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_token = encode_page_token(rows[-1].created_at, rows[-1].id)
        return JobPage(items=rows, next_page_token=next_token)

    def count_active_for_tenant(self, tenant_id: str) -> int:
        return self.session.scalar(
            select(func.count())
            .select_from(Job)
            .where(
                Job.tenant_id == tenant_id,
                Job.state.in_(_in(ACTIVE_STATES)),
                Job.deleted_at.is_(None),
            )
        ) or 0

    def count_by_state(self) -> dict[str, int]:
        """Jobs (not deleted) per state, all tenants (the API's ``/metrics``)."""
        rows = self.session.execute(
            select(Job.state, func.count()).where(Job.deleted_at.is_(None)).group_by(Job.state)
        )
        return {state: count for state, count in rows}

    def is_cancel_requested(self, job_id: str) -> bool:
        return bool(self.session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    # ---- transitions ---------------------------------------------------------------

    def _update_returning(self, stmt: Any) -> Job | None:
        stmt = stmt.returning(Job).execution_options(populate_existing=True)
        return self.session.execute(stmt).scalars().first()

    def claim(
        self, job_id: str, worker_id: str, lease_seconds: float, now: datetime | None = None
    ) -> Job | None:
        now = now or utcnow()
        target = JobState.RUNNING
        stmt = (
            update(Job)
            .where(
                Job.id == job_id,
                Job.deleted_at.is_(None),
                Job.cancel_requested.is_(False),
                Job.attempts < Job.max_attempts,
                or_(
                    Job.state.in_(_in(sources_for(target))),
                    # A running job whose lease expired: its worker is gone. This is the
                    # reclaim (running -> queued) and the claim in one statement.
                    and_(Job.state == JobState.RUNNING.value, Job.lease_expires_at < now),
                ),
            )
            .values(
                state=target.value,
                attempts=Job.attempts + 1,
                worker_id=worker_id,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                heartbeat_at=now,
                started_at=func.coalesce(Job.started_at, literal(now, UTCDateTime())),
            )
        )
        return self._update_returning(stmt)

    def heartbeat(
        self, job_id: str, worker_id: str, lease_seconds: float, now: datetime | None = None
    ) -> bool:
        now = now or utcnow()
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.RUNNING.value, Job.worker_id == worker_id)
            .values(heartbeat_at=now, lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
        return result.rowcount == 1

    def record_progress(
        self,
        job_id: str,
        progress: dict[str, Any],
        new_losses: Iterable[tuple[int, float | None]] = (),
        worker_id: str | None = None,
        lease_seconds: float | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Write progress and the new loss points; False (and nothing written) when the
        job is no longer running under ``worker_id``."""
        now = now or utcnow()
        values: dict[str, Any] = {"progress": progress}
        if lease_seconds is not None:
            values["heartbeat_at"] = now
            values["lease_expires_at"] = now + timedelta(seconds=lease_seconds)
        stmt = update(Job).where(Job.id == job_id, Job.state == JobState.RUNNING.value)
        if worker_id is not None:
            stmt = stmt.where(Job.worker_id == worker_id)
        if self.session.execute(stmt.values(**values)).rowcount != 1:
            return False
        LossPointRepository(self.session).upsert_many(job_id, new_losses)
        return True

    def finish(
        self,
        job_id: str,
        state: str,
        error: dict[str, Any] | None = None,
        worker_id: str | None = None,
        now: datetime | None = None,
    ) -> Job:
        target = JobState(state)
        if target not in FINAL_STATES:
            raise InvalidTransition(job_id, JobState.RUNNING.value, target.value)
        check_transition(job_id, JobState.RUNNING.value, target.value)
        now = now or utcnow()
        stmt = update(Job).where(Job.id == job_id, Job.state == JobState.RUNNING.value)
        if worker_id is not None:
            stmt = stmt.where(Job.worker_id == worker_id)
        if target is JobState.CANCELLED and error is None:
            error = cancelled_problem()
        job = self._update_returning(
            stmt.values(state=target.value, error=error, finished_at=now, lease_expires_at=None)
        )
        if job is not None:
            TenantRepository(self.session).release_job_slot(job.tenant_id)
            return job
        current = self.session.scalar(
            select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
        )
        if current is not None and current.state == JobState.RUNNING.value:
            raise LeaseLost(f"job {job_id} is held by worker {current.worker_id!r}")
        raise InvalidTransition(job_id, current.state if current else None, target.value)

    def request_cancel(self, job_id: str, now: datetime | None = None) -> Job | None:
        now = now or utcnow()
        job = self._update_returning(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(_in(sources_for(JobState.CANCELLED) - {JobState.RUNNING})))
            .values(state=JobState.CANCELLED.value, cancel_requested=True, finished_at=now,
                    error=cancelled_problem("The job was cancelled before it started."))
        )
        if job is not None:
            TenantRepository(self.session).release_job_slot(job.tenant_id)
            return job
        job = self._update_returning(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.RUNNING.value)
            .values(cancel_requested=True)
        )
        if job is not None:
            return job
        return self.session.scalar(
            select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
        )

    def release(self, job_id: str, worker_id: str) -> bool:
        check_transition(job_id, JobState.RUNNING.value, JobState.QUEUED.value)
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.RUNNING.value, Job.worker_id == worker_id)
            .values(state=JobState.QUEUED.value, worker_id=None, lease_expires_at=None, published_at=None)
        )
        return result.rowcount == 1

    def requeue_expired(self, job_id: str, now: datetime | None = None) -> bool:
        now = now or utcnow()
        check_transition(job_id, JobState.RUNNING.value, JobState.QUEUED.value)
        result = self.session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.state == JobState.RUNNING.value,
                Job.lease_expires_at < now,
                Job.attempts < Job.max_attempts,
                Job.cancel_requested.is_(False),
            )
            .values(
                state=JobState.QUEUED.value,
                worker_id=None,
                lease_expires_at=None,
                published_at=None,
            )
        )
        return result.rowcount == 1

    def finish_expired(
        self, job_id: str, state: str, error: dict[str, Any] | None = None, now: datetime | None = None
    ) -> bool:
        target = JobState(state)
        check_transition(job_id, JobState.RUNNING.value, target.value)
        if target not in FINAL_STATES:
            raise InvalidTransition(job_id, JobState.RUNNING.value, target.value)
        now = now or utcnow()
        if target is JobState.CANCELLED and error is None:
            error = cancelled_problem()
        tenant_id = self.session.scalar(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.RUNNING.value, Job.lease_expires_at < now)
            .values(state=target.value, error=error, finished_at=now, lease_expires_at=None)
            .returning(Job.tenant_id)
        )
        if tenant_id is None:
            return False
        TenantRepository(self.session).release_job_slot(tenant_id)
        return True

    def fail_queued(self, job_id: str, error: dict[str, Any], now: datetime | None = None) -> bool:
        check_transition(job_id, JobState.QUEUED.value, JobState.FAILED.value)
        now = now or utcnow()
        tenant_id = self.session.scalar(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED.value)
            .values(state=JobState.FAILED.value, error=error, finished_at=now)
            .returning(Job.tenant_id)
        )
        if tenant_id is None:
            return False
        TenantRepository(self.session).release_job_slot(tenant_id)
        return True

    def mark_published(self, job_id: str, now: datetime | None = None) -> None:
        self.session.execute(
            update(Job).where(Job.id == job_id).values(published_at=now or utcnow())
        )

    def soft_delete(self, tenant_id: str, job_id: str, now: datetime | None = None) -> bool:
        result = self.session.execute(
            update(Job)
            .where(Job.id == job_id, Job.tenant_id == tenant_id, Job.deleted_at.is_(None))
            .values(deleted_at=now or utcnow())
        )
        return result.rowcount == 1

    # ---- sweeper scans -------------------------------------------------------------

    def find_stuck_queued(self, older_than: datetime, limit: int = 500) -> list[Job]:
        last_published = func.coalesce(Job.published_at, Job.queued_at, Job.created_at)
        return list(
            self.session.scalars(
                select(Job)
                .where(
                    Job.state == JobState.QUEUED.value,
                    Job.deleted_at.is_(None),
                    last_published < literal(older_than, UTCDateTime()),
                )
                .order_by(Job.created_at)
                .limit(limit)
            )
        )

    def find_unpublished_queued(self, older_than: datetime, limit: int = 500) -> list[Job]:
        queued_since = func.coalesce(Job.queued_at, Job.created_at)
        return list(
            self.session.scalars(
                select(Job)
                .where(
                    Job.state == JobState.QUEUED.value,
                    Job.deleted_at.is_(None),
                    Job.published_at.is_(None),
                    queued_since < literal(older_than, UTCDateTime()),
                )
                .order_by(Job.created_at)
                .limit(limit)
            )
        )

    def find_published_queued(self, queue: str, limit: int = 500) -> list[Job]:
        return list(
            self.session.scalars(
                select(Job)
                .where(Job.state == JobState.QUEUED.value, Job.deleted_at.is_(None),
                       Job.queue == queue, Job.published_at.is_not(None))
                .order_by(Job.published_at, Job.id)
                .limit(limit)
            )
        )

    def count_published_queued(self, queue: str) -> int:
        return self.session.scalar(
            select(func.count()).select_from(Job)
            .where(Job.state == JobState.QUEUED.value, Job.deleted_at.is_(None),
                   Job.queue == queue, Job.published_at.is_not(None))
        ) or 0

    def find_expired_leases(self, now: datetime | None = None, limit: int = 500) -> list[Job]:
        now = now or utcnow()
        return list(
            self.session.scalars(
                select(Job)
                .where(Job.state == JobState.RUNNING.value, Job.lease_expires_at < now)
                .order_by(Job.lease_expires_at)
                .limit(limit)
            )
        )
