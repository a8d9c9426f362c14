"""Result artifacts of a job (one blob per (job_id, kind); kinds in ``ArtifactKind``).

``ArtifactRepository`` methods:
- ``put(job_id, kind, content, content_type=None, meta=None) -> Artifact`` — upsert
  (INSERT ... ON CONFLICT (job_id, kind) DO UPDATE), computing sha256 and size; with a
  blob store (``ArtifactRepository(session, blobs=..., inline_max_bytes=...)``) content of
  at least ``inline_max_bytes`` is written to the blob store first (key
  ``artifacts/<job_id>/<kind>-<sha256>``) and the row keeps only the key;
- ``get(job_id, kind) -> Artifact | None`` (metadata only; ``content`` not loaded);
- ``get_content(job_id, kind) -> bytes | None``;
- ``get_with_content(job_id, kind) -> (Artifact, bytes) | None``;
- ``list_for_job(job_id) -> list[Artifact]`` (metadata only);
- ``delete(job_id, kind) -> bool``.

Blob keys a ``put`` replaced or a ``delete`` dropped are collected in
``replaced_blob_keys``: the caller deletes them from the blob store *after* its commit
(before it, a rollback would leave the row naming a deleted blob). Reading a blob-backed
row without a store given uses ``store.blobs.blob_store(get_settings())``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, undefer

from store.blobs import BlobStore

from store.models import Artifact, ArtifactKind, utcnow
from store.repositories.base import Repository


class ArtifactRepository(Repository[Artifact]):
    model = Artifact

    def __init__(self, session: Session, blobs: BlobStore | None = None,
                 inline_max_bytes: int | None = None) -> None:
        super().__init__(session)
        self.blobs = blobs
        self.inline_max_bytes = inline_max_bytes
        self.replaced_blob_keys: list[str] = []

    def _blobs(self) -> BlobStore:
        if self.blobs is None:
            from store.blobs import blob_store
            from common.settings import get_settings

            self.blobs = blob_store(get_settings())
        return self.blobs

    def put(
        self,
        job_id: str,
        kind: str,
        content: bytes,
        content_type: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Artifact:
        content_type = content_type or ArtifactKind.CONTENT_TYPES.get(kind, "application/octet-stream")
        sha256 = hashlib.sha256(content).hexdigest()
        blob_key = None
        if self.blobs is not None and self.inline_max_bytes is not None and len(content) >= self.inline_max_bytes:
            blob_key = f"artifacts/{job_id}/{kind}-{sha256}"
            self.blobs.put_bytes(blob_key, content)  # before the row names it
        previous = self.session.scalar(
            select(Artifact.blob_key).where(Artifact.job_id == job_id, Artifact.kind == kind)
        )
        if previous and previous != blob_key:
            self.replaced_blob_keys.append(previous)
        values = {
            "content_type": content_type,
            "sha256": sha256,
            "size_bytes": len(content),
            "meta": meta,
            "content": None if blob_key else content,
            "blob_key": blob_key,
            "created_at": utcnow(),
        }
        stmt = self._insert().values(job_id=job_id, kind=kind, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Artifact.job_id, Artifact.kind],
            set_={k: getattr(stmt.excluded, k) for k in values},
        )
        self.session.execute(stmt)
        artifact = self.session.scalar(
            select(Artifact)
            .where(Artifact.job_id == job_id, Artifact.kind == kind)
            .execution_options(populate_existing=True)
        )
        assert artifact is not None
        return artifact

    def get(self, job_id: str, kind: str) -> Artifact | None:  # type: ignore[override]
        return self.session.scalar(
            select(Artifact).where(Artifact.job_id == job_id, Artifact.kind == kind)
        )

    def get_content(self, job_id: str, kind: str) -> bytes | None:
        row = self.session.execute(
            select(Artifact.content, Artifact.blob_key).where(Artifact.job_id == job_id, Artifact.kind == kind)
        ).first()
        if row is None:
            return None
        return self._blobs().get_bytes(row.blob_key) if row.blob_key else row.content

    def get_with_content(self, job_id: str, kind: str) -> tuple[Artifact, bytes] | None:
        artifact = self.session.scalar(
            select(Artifact)
            .options(undefer(Artifact.content))
            .where(Artifact.job_id == job_id, Artifact.kind == kind)
            .execution_options(populate_existing=True)
        )
        if artifact is None:
            return None
        if artifact.blob_key:
            return artifact, self._blobs().get_bytes(artifact.blob_key)
        return artifact, artifact.content

    def list_for_job(self, job_id: str) -> list[Artifact]:
        return list(
            self.session.scalars(
                select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.kind)
            )
        )

    def delete(self, job_id: str, kind: str) -> bool:
        key = self.session.scalar(
            select(Artifact.blob_key).where(Artifact.job_id == job_id, Artifact.kind == kind)
        )
        if key:
            self.replaced_blob_keys.append(key)
        result = self.session.execute(
            delete(Artifact).where(Artifact.job_id == job_id, Artifact.kind == kind)
        )
        return result.rowcount == 1
