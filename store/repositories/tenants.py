"""Tenants.

``TenantRepository`` methods:
- ``get(id)``, ``get_by_name(name)``
- ``create(name) -> Tenant``
- ``get_or_create(name) -> Tenant`` (race-safe: INSERT ... ON CONFLICT DO NOTHING)
- ``lock(tenant_id)`` — serialise this tenant's writers until the transaction ends
  (used to count-then-insert under the concurrent-jobs quota)
"""

from __future__ import annotations

from sqlalchemy import select, update

from store.models import Tenant, new_id, utcnow
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
