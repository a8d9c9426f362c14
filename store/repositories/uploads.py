"""Resumable chunked uploads (tables ``uploads`` and ``upload_parts``).

``UploadRepository`` methods:
- ``create(tenant_id, *, size_bytes, sha256, part_bytes, expires_at, name=None, filename=None,
  content_type=None) -> Upload``
- ``get_for_tenant(tenant_id, upload_id) -> Upload | None`` (None for another tenant's)
- ``parts(upload_id) -> list[UploadPart]`` (by part number)
- ``put_part(upload_id, part_number, size_bytes, sha256)`` — upsert on (upload_id, part_number)
- ``lock_open(upload_id) -> Upload | None`` — the upload, row-locked, if it still takes parts
- ``claim(upload_id, now, stale_before) -> bool`` — guarded ``open -> completing`` (one
  ``complete`` at a time; a claim older than ``stale_before`` is a crashed one, taken over)
- ``completing_count(tenant_id, stale_before) -> int`` — the tenant's live ``completing`` claims
- ``reject(upload_id)`` — ``completing -> aborted`` when the verified file does not decode
- ``release(upload_id)`` — ``completing -> open`` after a failed complete
- ``complete(upload_id, dataset_id) -> bool`` — guarded ``open|completing -> complete``
- ``abort(upload_id) -> bool`` — guarded ``open -> aborted``
- ``open_usage(tenant_id, now) -> (count, declared bytes)`` of the tenant's unexpired open
  or completing uploads (the per-tenant caps)
- ``expired(now, tenant_id=None, limit=100) -> list[Upload]`` (open uploads past ``expires_at``)

``purge_expired(factory, blobs, now, tenant_id=None, limit=100) -> list[str]`` aborts open
uploads past ``expires_at`` and deletes their parts (the API on a tenant's next create,
the sweeper for everyone).

The parts' bytes are in the blob store under ``uploads/<upload_id>/<part_number>-<sha256>``
(``api.datasets.uploads``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, or_, select, update

from typing import Any

from store.models import Upload, UploadPart, new_id, utcnow
from store.repositories.base import Repository


class UploadRepository(Repository[Upload]):
    model = Upload

    def create(self, tenant_id: str, *, size_bytes: int, sha256: str, part_bytes: int, expires_at: datetime,
               name: str | None = None, filename: str | None = None, content_type: str | None = None) -> Upload:
        return self.add(Upload(id=new_id(), tenant_id=tenant_id, state="open", size_bytes=size_bytes,
                               sha256=sha256, part_bytes=part_bytes, expires_at=expires_at, name=name,
                               filename=filename, content_type=content_type, created_at=utcnow()))

    def get_for_tenant(self, tenant_id: str, upload_id: str) -> Upload | None:
        return self.session.scalar(select(Upload).where(Upload.id == upload_id, Upload.tenant_id == tenant_id))

    def parts(self, upload_id: str) -> list[UploadPart]:
        return list(self.session.scalars(
            select(UploadPart).where(UploadPart.upload_id == upload_id).order_by(UploadPart.part_number)
        ))

    def put_part(self, upload_id: str, part_number: int, size_bytes: int, sha256: str) -> None:
        values = {"size_bytes": size_bytes, "sha256": sha256, "created_at": utcnow()}
        stmt = self._insert_part().values(upload_id=upload_id, part_number=part_number, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[UploadPart.upload_id, UploadPart.part_number],
                                          set_={k: getattr(stmt.excluded, k) for k in values})
        self.session.execute(stmt)

    def lock_open(self, upload_id: str) -> Upload | None:
        return self.session.scalar(
            select(Upload).where(Upload.id == upload_id, Upload.state == "open").with_for_update()
        )

    def claim(self, upload_id: str, now: datetime, stale_before: datetime) -> bool:
        # ``completed_at`` holds the claim's time while the state is ``completing``.
        result = self.session.execute(
            update(Upload).where(
                Upload.id == upload_id,
                or_(and_(Upload.state == "open", Upload.expires_at >= now),
                    and_(Upload.state == "completing", Upload.completed_at < stale_before)),
            ).values(state="completing", completed_at=now)
        )
        return result.rowcount == 1

    def completing_count(self, tenant_id: str, stale_before: datetime) -> int:
        return int(self.session.scalar(select(func.count()).where(
            Upload.tenant_id == tenant_id, Upload.state == "completing", Upload.completed_at >= stale_before)) or 0)

    def reject(self, upload_id: str) -> None:
        """``completing -> aborted``: the verified file does not decode; it never will."""
        self.session.execute(
            update(Upload).where(Upload.id == upload_id, Upload.state == "completing").values(state="aborted")
        )

    def release(self, upload_id: str) -> None:
        self.session.execute(
            update(Upload).where(Upload.id == upload_id, Upload.state == "completing")
            .values(state="open", completed_at=None)
        )

    def open_usage(self, tenant_id: str, now: datetime) -> tuple[int, int]:
        row = self.session.execute(
            select(func.count(), func.coalesce(func.sum(Upload.size_bytes), 0)).where(
                Upload.tenant_id == tenant_id, Upload.state.in_(("open", "completing")), Upload.expires_at >= now)
        ).one()
        return int(row[0]), int(row[1])

    def complete(self, upload_id: str, dataset_id: str) -> bool:
        result = self.session.execute(
            update(Upload).where(Upload.id == upload_id, Upload.state.in_(("open", "completing")))
            .values(state="complete", dataset_id=dataset_id, completed_at=utcnow())
        )
        return result.rowcount == 1

    def abort(self, upload_id: str) -> bool:
        result = self.session.execute(
            update(Upload).where(Upload.id == upload_id, Upload.state == "open").values(state="aborted")
        )
        return result.rowcount == 1

    def expired(self, now: datetime, tenant_id: str | None = None, limit: int = 100) -> list[Upload]:
        stmt = select(Upload).where(Upload.state == "open", Upload.expires_at < now)
        if tenant_id is not None:
            stmt = stmt.where(Upload.tenant_id == tenant_id)
        return list(self.session.scalars(stmt.limit(limit)))

    def _insert_part(self):  # type: ignore[no-untyped-def]
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(UploadPart)


def purge_expired(factory: Any, blobs: Any, now: datetime, tenant_id: str | None = None,
                  limit: int = 100) -> list[str]:
    """Abort up to ``limit`` expired open uploads (of ``tenant_id``, or anyone's) and delete
    their parts; returns their ids. Only an upload this call moved to ``aborted`` loses
    its parts (never one a complete has claimed meanwhile)."""
    with factory.begin() as session:
        repo = UploadRepository(session)
        aborted = [u.id for u in repo.expired(now, tenant_id=tenant_id, limit=limit) if repo.abort(u.id)]
    for upload_id in aborted:
        blobs.delete_prefix(f"uploads/{upload_id}")
    return aborted
