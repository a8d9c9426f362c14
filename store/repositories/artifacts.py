"""Result artifacts of a job (one blob per (job_id, kind); kinds in ``ArtifactKind``).

``ArtifactRepository`` methods:
- ``put(job_id, kind, content, content_type=None, meta=None) -> Artifact`` — upsert
  (INSERT ... ON CONFLICT (job_id, kind) DO UPDATE), computing sha256 and size;
- ``get(job_id, kind) -> Artifact | None`` (metadata only; ``content`` not loaded);
- ``get_content(job_id, kind) -> bytes | None``;
- ``get_with_content(job_id, kind) -> (Artifact, bytes) | None``;
- ``list_for_job(job_id) -> list[Artifact]`` (metadata only);
- ``delete(job_id, kind) -> bool``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import undefer

from store.models import Artifact, ArtifactKind, utcnow
from store.repositories.base import Repository


class ArtifactRepository(Repository[Artifact]):
    model = Artifact

    def put(
        self,
        job_id: str,
        kind: str,
        content: bytes,
        content_type: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Artifact:
        content_type = content_type or ArtifactKind.CONTENT_TYPES.get(kind, "application/octet-stream")
        values = {
            "content_type": content_type,
            "sha256": hashlib.sha256(content).hexdigest(),
            "size_bytes": len(content),
            "meta": meta,
            "content": content,
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
        return self.session.scalar(
            select(Artifact.content).where(Artifact.job_id == job_id, Artifact.kind == kind)
        )

    def get_with_content(self, job_id: str, kind: str) -> tuple[Artifact, bytes] | None:
        artifact = self.session.scalar(
            select(Artifact)
            .options(undefer(Artifact.content))
            .where(Artifact.job_id == job_id, Artifact.kind == kind)
            .execution_options(populate_existing=True)
        )
        if artifact is None:
            return None
        return artifact, artifact.content

    def list_for_job(self, job_id: str) -> list[Artifact]:
        return list(
            self.session.scalars(
                select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.kind)
            )
        )

    def delete(self, job_id: str, kind: str) -> bool:
        result = self.session.execute(
            delete(Artifact).where(Artifact.job_id == job_id, Artifact.kind == kind)
        )
        return result.rowcount == 1
