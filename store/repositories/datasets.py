"""Datasets: content-addressed (sha256 of the canonical NPZ), deduplicated per tenant.

``DatasetRepository`` methods:
- ``get_or_create(tenant_id, sha256, content, fields, format, name=None, *, blob_key=None,
  size_bytes=None) -> (Dataset, created)`` (race-safe: INSERT ... ON CONFLICT (tenant_id,
  sha256) DO NOTHING, then SELECT); ``content=None`` with a ``blob_key`` (and its size)
  for a dataset whose canonical NPZ is in the blob store (``store.blobs``)
- ``get_for_tenant(tenant_id, dataset_id) -> Dataset | None`` (None for another tenant's)
- ``get_content(dataset_id) -> bytes | None`` (the row's bytes; None for a blob-store dataset)
- ``get_location(dataset_id) -> DatasetLocation | None`` (sha256, blob_key, size_bytes)
- ``list_for_tenant(tenant_id, limit=100) -> list[Dataset]`` (newest first, no content)

Encoding arrays to the canonical NPZ and back: ``common.arrays``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import select

from store.models import Dataset, new_id, utcnow
from store.repositories.base import Repository


class DatasetLocation(NamedTuple):
    sha256: str
    blob_key: str | None
    size_bytes: int


class DatasetRepository(Repository[Dataset]):
    model = Dataset

    def get_or_create(
        self,
        tenant_id: str,
        sha256: str,
        content: bytes | None,
        fields: dict[str, Any],
        format: str,
        name: str | None = None,
        *,
        blob_key: str | None = None,
        size_bytes: int | None = None,
    ) -> tuple[Dataset, bool]:
        if (content is None) == (blob_key is None):
            raise ValueError("give either content or a blob_key")
        stmt = (
            self._insert()
            .values(
                id=new_id(),
                tenant_id=tenant_id,
                sha256=sha256,
                name=name,
                fields=fields,
                format=format,
                size_bytes=len(content) if content is not None else int(size_bytes or 0),
                content=content,
                blob_key=blob_key,
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

    def get_location(self, dataset_id: str) -> DatasetLocation | None:
        row = self.session.execute(
            select(Dataset.sha256, Dataset.blob_key, Dataset.size_bytes).where(Dataset.id == dataset_id)
        ).first()
        return DatasetLocation(row.sha256, row.blob_key, int(row.size_bytes)) if row is not None else None

    def list_for_tenant(self, tenant_id: str, limit: int = 100) -> list[Dataset]:
        return list(
            self.session.scalars(
                select(Dataset)
                .where(Dataset.tenant_id == tenant_id)
                .order_by(Dataset.created_at.desc(), Dataset.id.desc())
                .limit(limit)
            )
        )
