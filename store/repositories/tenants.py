"""Tenants.

``TenantRepository`` methods:
- ``get(id)``, ``get_by_name(name)``
- ``create(name) -> Tenant``
- ``get_or_create(name) -> Tenant`` (race-safe: INSERT ... ON CONFLICT DO NOTHING)
- ``lock(tenant_id)`` — serialise this tenant's writers until the transaction ends
- ``take_job_slot(tenant_id, limit) -> bool`` — one guarded UPDATE
  (``active_jobs = active_jobs + 1 WHERE active_jobs < limit``): the concurrent-jobs
  quota, atomic on both dialects; call it in the short transaction that inserts the job
- ``release_job_slot(tenant_id)`` — ``active_jobs - 1`` (never below 0); called by the
  ``JobRepository`` transitions that take a job out of queued/running
- ``recount_active_jobs(tenant_id) -> int`` — reset the counter to the tenant's queued +
  running jobs (the counter is an upper bound; a submit at the limit recounts once)
"""

from __future__ import annotations

from sqlalchemy import case, func, select, update

from store.job_states import ACTIVE_STATES
from store.models import Job, Tenant, new_id, utcnow
from store.repositories.base import Repository

DEFAULT_TENANT_NAME = "default"


class TenantRepository(Repository[Tenant]):
    model = Tenant

    def get_by_name(self, name: str) -> Tenant | None:
        return self.session.scalar(select(Tenant).where(Tenant.name == name))

    def create(self, name: str) -> Tenant:
        return self.add(Tenant(name=name))

    def lock(self, tenant_id: str) -> None:
        # A no-op UPDATE rather than SELECT ... FOR UPDATE: it takes Postgres's row lock and
        # SQLite's database write lock alike, so a concurrent submit of the same tenant waits
        # here until this transaction commits, then counts what it committed.
        self.session.execute(update(Tenant).where(Tenant.id == tenant_id).values(name=Tenant.name))

    def take_job_slot(self, tenant_id: str, limit: int) -> bool:
        # Row-level atomic on Postgres (a concurrent UPDATE of the row waits for this
        # transaction, then re-evaluates the WHERE on the committed value) and on SQLite
        # (one writer). The transaction around it must be short: it holds the row lock.
        result = self.session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.active_jobs < limit)
            .values(active_jobs=Tenant.active_jobs + 1)
        )
        return result.rowcount == 1

    def release_job_slot(self, tenant_id: str) -> None:
        self.session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(active_jobs=case((Tenant.active_jobs > 0, Tenant.active_jobs - 1), else_=0))
        )

    def recount_active_jobs(self, tenant_id: str) -> int:
        # Lock the row first, then count in a second statement: on Postgres (READ
        # COMMITTED) that statement's snapshot is taken after the lock was granted, so it
        # sees every job committed by a transaction that held the lock before; on SQLite
        # the first UPDATE takes the database write lock. Deleted jobs still queued or
        # running count (a running job deleted mid-run holds its slot until it stops),
        # matching the transitions that release slots.
        self.lock(tenant_id)
        active = (
            select(func.count())
            .select_from(Job)
            .where(Job.tenant_id == tenant_id, Job.state.in_(sorted(s.value for s in ACTIVE_STATES)))
            .scalar_subquery()
        )
        self.session.execute(update(Tenant).where(Tenant.id == tenant_id).values(active_jobs=active))
        return int(self.session.scalar(select(Tenant.active_jobs).where(Tenant.id == tenant_id)) or 0)

    def get_or_create(self, name: str) -> Tenant:
        stmt = (
            self._insert()
            .values(id=new_id(), name=name, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=[Tenant.name])
        )
        self.session.execute(stmt)
        tenant = self.get_by_name(name)
        assert tenant is not None
        return tenant


def ensure_default_tenant(session) -> Tenant:
    """The tenant used when auth is disabled (embedded, single-user mode)."""
    return TenantRepository(session).get_or_create(DEFAULT_TENANT_NAME)
