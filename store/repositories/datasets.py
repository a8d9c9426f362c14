"""Datasets: content-addressed (sha256 of the canonical NPZ), deduplicated per tenant.

``DatasetRepository`` methods:
- ``get_or_create(tenant_id, sha256, content, fields, format, name=None) -> (Dataset, created)``
  (race-safe: INSERT ... ON CONFLICT (tenant_id, sha256) DO NOTHING, then SELECT)
- ``get_for_tenant(tenant_id, dataset_id) -> Dataset | None`` (None for another tenant's)
- ``get_content(dataset_id) -> bytes | None``
- ``list_for_tenant(tenant_id, limit=100) -> list[Dataset]`` (newest first, no content)

Encoding arrays to the canonical NPZ and back: ``common.arrays``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from store.models import Dataset, new_id, utcnow
from store.repositories.base import Repository


class DatasetRepository(Repository[Dataset]):
    model = Dataset

    def get_or_create(
        self,
        tenant_id: str,
        sha256: str,
        content: bytes,
        fields: dict[str, Any],
        format: str,
        name: str | None = None,
    ) -> tuple[Dataset, bool]:
        stmt = (
            self._insert()
            .values(
                id=new_id(),
                tenant_id=tenant_id,
                sha256=sha256,
                name=name,
                fields=fields,
                format=format,
                size_bytes=len(content),
                content=content,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=[Dataset.tenant_id, Dataset.sha256])
            .returning(Dataset.id)
        )
        # RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
        created = self.session.execute(stmt).first() is not None
        dataset = self.session.scalar(
            select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.sha256 == sha256)
        )
        assert dataset is not None
        return dataset, created

    def get_for_tenant(self, tenant_id: str, dataset_id: str) -> Dataset | None:
        return self.session.scalar(
            select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
        )

    def get_content(self, dataset_id: str) -> bytes | None:
        return self.session.scalar(select(Dataset.content).where(Dataset.id == dataset_id))

    def list_for_tenant(self, tenant_id: str, limit: int = 100) -> list[Dataset]:
        return list(
            self.session.scalars(
                select(Dataset)
                .where(Dataset.tenant_id == tenant_id)
                .order_by(Dataset.created_at.desc(), Dataset.id.desc())
                .limit(limit)
            )
        )
