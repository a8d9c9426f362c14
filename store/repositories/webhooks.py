"""Webhooks: tenants' signing secrets and the delivery log (one row per attempt).

``WebhookRepository`` methods:

secrets (``tenants.webhook_secret*``; never loaded with the tenant row, see ``Tenant``)
- ``get_or_create_secret(tenant_id) -> str`` — race-safe: the first writer's secret wins
- ``rotate_secret(tenant_id, now=None) -> str`` — a new secret; the old one becomes
  ``previous`` (it keeps signing for ``rotation_overlap_s``)
- ``secret_state(tenant_id) -> SecretState`` — current, previous, rotated_at
- ``signing_secrets(tenant_id, overlap_s, now=None) -> list[str]`` — current (made if
  missing) first, then the previous one while the overlap lasts

deliveries (``webhook_deliveries``)
- ``finished_job(job_id) -> FinishedJob | None`` — what a delivery needs of a final job
- ``start_attempt(job_id, attempt, url, event, webhook_id, in_flight_until) -> int | None``
  — INSERT ... ON CONFLICT (job_id, attempt) DO NOTHING: None when another sender
  already made attempt ``attempt``
- ``record_outcome(delivery_id, status_code, error, delivered_at, next_attempt_at)``
- ``claim_due(now=None, limit=50) -> list[DueDelivery]`` — attempts whose
  ``next_attempt_at`` has passed, each claimed by one guarded UPDATE (concurrent
  sweepers never both retry one); an attempt that was in flight and never got an outcome
  (its sender died) is marked ``interrupted``
- ``find_jobs_without_delivery(finished_after, finished_before, limit=100) -> list[str]``
  — final jobs with a webhook and no attempt yet
- ``list_for_job(job_id) -> list[WebhookDelivery]`` — by attempt
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, exists, func, select, update

from common.webhooks.events import previous_secret_valid_until
from common.webhooks.signing import generate_secret

from store.job_states import FINAL_STATES
from store.models import Job, Tenant, WebhookDelivery, utcnow
from store.repositories.base import Repository

INTERRUPTED = "interrupted: the sender stopped before recording an outcome"


@dataclass(frozen=True)
class SecretState:
    secret: str | None
    previous: str | None
    rotated_at: datetime | None


@dataclass(frozen=True)
class FinishedJob:
    id: str
    tenant_id: str
    state: str
    url: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class DueDelivery:
    id: int
    job_id: str
    attempt: int


class WebhookRepository(Repository[WebhookDelivery]):
    model = WebhookDelivery

    # ---- secrets ----------------------------------------------------------------------

    def secret_state(self, tenant_id: str) -> SecretState:
        row = self.session.execute(
            select(Tenant.webhook_secret, Tenant.webhook_secret_previous, Tenant.webhook_secret_rotated_at)
            .where(Tenant.id == tenant_id)
        ).first()
        if row is None:
            raise LookupError(f"no tenant {tenant_id!r}")
        return SecretState(*row)

    def get_or_create_secret(self, tenant_id: str) -> str:
        current = self.secret_state(tenant_id).secret
        if current is not None:
            return current
        # Guarded: two first uses at once both try; the second UPDATE matches no row and
        # both read the winner's secret.
        self.session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.webhook_secret.is_(None))
            .values(webhook_secret=generate_secret())
        )
        current = self.secret_state(tenant_id).secret
        assert current is not None
        return current

    def rotate_secret(self, tenant_id: str, now: datetime | None = None) -> str:
        self.get_or_create_secret(tenant_id)
        new = generate_secret()
        self.session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(webhook_secret_previous=Tenant.webhook_secret, webhook_secret=new,
                    webhook_secret_rotated_at=now or utcnow())
        )
        return new

    def signing_secrets(self, tenant_id: str, overlap_s: float, now: datetime | None = None) -> list[str]:
        current = self.get_or_create_secret(tenant_id)
        state = self.secret_state(tenant_id)
        now = now or utcnow()
        secrets = [current]
        until = previous_secret_valid_until(state.rotated_at, overlap_s)
        if state.previous and until is not None and until > now:
            secrets.append(state.previous)
        return secrets

    # ---- deliveries -------------------------------------------------------------------

    def finished_job(self, job_id: str) -> FinishedJob | None:
        row = self.session.execute(
            select(Job.id, Job.tenant_id, Job.state, Job.webhook, Job.finished_at).where(Job.id == job_id)
        ).first()
        if row is None or row.state not in {s.value for s in FINAL_STATES}:
            return None
        webhook: Any = row.webhook
        url = webhook.get("url") if isinstance(webhook, dict) else None
        return FinishedJob(id=row.id, tenant_id=row.tenant_id, state=row.state,
                           url=url if isinstance(url, str) and url else None, finished_at=row.finished_at)

    def start_attempt(
        self, job_id: str, attempt: int, url: str, event: str, webhook_id: str, in_flight_until: datetime,
    ) -> int | None:
        stmt = (
            self._insert()
            .values(job_id=job_id, attempt=attempt, url=url, event=event, webhook_id=webhook_id,
                    created_at=utcnow(), next_attempt_at=in_flight_until)
            .on_conflict_do_nothing(index_elements=[WebhookDelivery.job_id, WebhookDelivery.attempt])
            .returning(WebhookDelivery.id)
        )
        return self.session.execute(stmt).scalar()

    def record_outcome(
        self,
        delivery_id: int,
        *,
        status_code: int | None,
        error: str | None,
        delivered_at: datetime | None,
        next_attempt_at: datetime | None,
    ) -> None:
        self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(status_code=status_code, error=error, delivered_at=delivered_at,
                    next_attempt_at=next_attempt_at)
        )

    def claim_due(self, now: datetime | None = None, limit: int = 50) -> list[DueDelivery]:
        now = now or utcnow()
        rows = self.session.execute(
            select(WebhookDelivery.id, WebhookDelivery.job_id, WebhookDelivery.attempt,
                   WebhookDelivery.next_attempt_at, WebhookDelivery.status_code, WebhookDelivery.error)
            .where(WebhookDelivery.next_attempt_at.is_not(None), WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        claimed = []
        for row in rows:
            values: dict[str, Any] = {"next_attempt_at": None}
            if row.status_code is None and row.error is None:
                values["error"] = INTERRUPTED
            result = self.session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == row.id, WebhookDelivery.next_attempt_at == row.next_attempt_at)
                .values(**values)
            )
            if result.rowcount == 1:
                claimed.append(DueDelivery(id=row.id, job_id=row.job_id, attempt=row.attempt))
        return claimed

    def find_jobs_without_delivery(
        self, finished_after: datetime, finished_before: datetime, limit: int = 100
    ) -> list[str]:
        # ``webhook`` is SQL NULL when never set and JSON null when set to None.
        has_webhook = func.coalesce(cast(Job.webhook, Text), "null") != "null"
        attempted = exists().where(WebhookDelivery.job_id == Job.id)
        return list(self.session.scalars(
            select(Job.id)
            .where(Job.state.in_([s.value for s in FINAL_STATES]),
                   Job.finished_at >= finished_after, Job.finished_at <= finished_before,
                   has_webhook, ~attempted)
            .order_by(Job.finished_at)
            .limit(limit)
        ))

    def list_for_job(self, job_id: str) -> list[WebhookDelivery]:
        return list(self.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.attempt)
        ))
