"""API keys (hashed at rest).

``ApiKeyRepository`` methods:
- ``create(tenant_id, key_hash, prefix, name=None) -> ApiKey``
- ``find_active_by_hash(key_hash) -> ApiKey | None`` (not revoked)
- ``list_for_tenant(tenant_id) -> list[ApiKey]``
- ``revoke(tenant_id, key_id) -> bool``
- ``touch(key_id)`` (sets ``last_used_at``)

Key material comes from ``common.keys`` (``generate_api_key``, ``hash_api_key``).
"""

from __future__ import annotations

from sqlalchemy import select, update

from store.models import ApiKey, utcnow
from store.repositories.base import Repository


class ApiKeyRepository(Repository[ApiKey]):
    model = ApiKey

    def create(self, tenant_id: str, key_hash: str, prefix: str, name: str | None = None) -> ApiKey:
        return self.add(ApiKey(tenant_id=tenant_id, key_hash=key_hash, prefix=prefix, name=name))

    def find_active_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )

    def list_for_tenant(self, tenant_id: str) -> list[ApiKey]:
        return list(
            self.session.scalars(
                select(ApiKey).where(ApiKey.tenant_id == tenant_id).order_by(ApiKey.created_at)
            )
        )

    def revoke(self, tenant_id: str, key_id: str) -> bool:
        result = self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return result.rowcount == 1

    def touch(self, key_id: str) -> None:
        self.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
