"""Idempotency keys of job submissions (table ``idempotency_keys``).

A submission with an ``Idempotency-Key`` claims the key in a short transaction of its
own, *before* the slow steps (dry run), and binds the key to the job in the
transaction that inserts the job. Nothing is locked in between: a concurrent duplicate
sees the claim, waits a little and replays the job, or answers "in progress".

``IdempotencyRepository`` methods:
- ``claim(tenant_id, key, fingerprint, token, now=None) -> bool`` — ``INSERT ... ON
  CONFLICT DO NOTHING``; True when this caller now owns the key
- ``get(tenant_id, key) -> IdempotencyKey | None`` — fresh from the database
- ``take_over_stale(tenant_id, key, fingerprint, token, stale_before) -> bool`` — a claim
  with no job whose owner has not finished since ``stale_before`` (it crashed, or its
  release failed) goes to this caller (guarded UPDATE)
- ``complete(tenant_id, key, token, job_id) -> bool`` — bind the job; False when the
  claim is no longer this caller's
- ``release(tenant_id, key, token) -> bool`` — drop an unfinished claim of this caller
  (the submission was refused, so the key may be used again)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from store.models import IdempotencyKey, UTCDateTime, utcnow
from store.repositories.base import Repository


class IdempotencyRepository(Repository[IdempotencyKey]):
    model = IdempotencyKey

    def claim(self, tenant_id: str, key: str, fingerprint: str, token: str, now: datetime | None = None) -> bool:
        stmt = (
            self._insert()
            .values(tenant_id=tenant_id, key=key, fingerprint=fingerprint, claim_token=token,
                    job_id=None, claimed_at=now or utcnow())
            .on_conflict_do_nothing(index_elements=[IdempotencyKey.tenant_id, IdempotencyKey.key])
            .returning(IdempotencyKey.key)
        )
        # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
        return self.session.execute(stmt).first() is not None

    def get(self, tenant_id: str, key: str) -> IdempotencyKey | None:  # type: ignore[override]
        return self.session.scalar(
            select(IdempotencyKey)
            .where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )

    def take_over_stale(self, tenant_id: str, key: str, fingerprint: str, token: str,
                        stale_before: datetime, now: datetime | None = None) -> bool:
        from sqlalchemy import literal

        result = self.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.tenant_id == tenant_id,
                IdempotencyKey.key == key,
                IdempotencyKey.job_id.is_(None),
                IdempotencyKey.claimed_at < literal(stale_before, UTCDateTime()),
            )
            .values(fingerprint=fingerprint, claim_token=token, claimed_at=now or utcnow())
        )
        return result.rowcount == 1

    def complete(self, tenant_id: str, key: str, token: str, job_id: str) -> bool:
        result = self.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.tenant_id == tenant_id,
                IdempotencyKey.key == key,
                IdempotencyKey.claim_token == token,
                IdempotencyKey.job_id.is_(None),
            )
            .values(job_id=job_id)
        )
        return result.rowcount == 1

    def release(self, tenant_id: str, key: str, token: str) -> bool:
        result = self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.tenant_id == tenant_id,
                IdempotencyKey.key == key,
                IdempotencyKey.claim_token == token,
                IdempotencyKey.job_id.is_(None),
            )
        )
        return result.rowcount == 1
