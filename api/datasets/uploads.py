"""Resumable chunked dataset uploads: create -> parts -> complete.

1. ``create``: the client declares the file's size and sha256; the server fixes the part
   size (``uploads.default_part_bytes``, at most ``uploads.max_part_bytes`` and the
   request body limit) and answers the upload with its part count.
2. ``put_part``: ``PUT .../parts/{n}`` with the part's bytes and its sha256 in
   ``X-Content-SHA256``. The body is streamed to a scratch file (never held in memory),
   its size and digest checked, then stored in the blob store under
   ``uploads/<id>/<n>-<sha256>``; sending a part again replaces it. ``GET`` on the upload lists
   the parts received, so a client whose connection dropped resumes with the missing
   ones instead of starting over.
3. ``complete``: the parts are concatenated into a scratch file while hashing, the
   whole file's sha256 must equal the declared one, the file is decoded into the
   canonical NPZ streamed (``api.datasets.large``, the single-request upload's safety
   checks), stored content-addressed in the blob store and recorded as a dataset; the
   parts are then deleted. Completing again answers the same dataset.

Races and limits: ``complete`` first claims the upload (``open -> completing``, one at a
time; a second ``complete`` meanwhile is ``409``, and so are parts and ``DELETE``), and
gives it back (``open``) when it fails, except when the verified file is refused as a
dataset (``422``/``413``/``415``): no retry could change that, so the upload is then
``aborted`` and its parts deleted. An expired upload cannot be completed. A part is
recorded only while its upload is still open (row-locked), else its blob is deleted, so
no part outlives its upload. Each tenant holds at most ``uploads.max_open_per_tenant``
open uploads declaring at most ``uploads.max_open_bytes_per_tenant`` in all, and runs at
most ``uploads.max_completing_per_tenant`` completes at once (``429``).

Each step uses short sessions of its own (no connection is held while bytes stream).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.datasets import large
from api.datasets.schemas import DatasetOut, UploadCreate, UploadOut, UploadPartOut
from api.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable, VihubError
from api.ids import is_resource_id
from api.runtime import Runtime, TenantRef
from common.settings import Settings
from store.blobs import blob_store, dataset_key
from store.blobs.npz import file_sha256
from store.models import Upload, utcnow
from store.repositories.datasets import DatasetRepository
from store.repositories.uploads import UploadRepository, purge_expired

log = logging.getLogger("vihub.api.uploads")

MAX_PARTS = 10_000
# A ``completing`` claim older than this is a crashed complete: another may take it over.
COMPLETING_STALE_S = 3600.0
_CHUNK = 1 << 20


class UploadNotFound(NotFound):
    slug, title = "upload-not-found", "Upload not found"


class UploadNotOpen(Conflict):
    slug, title = "upload-not-open", "Upload no longer accepts parts"


class UploadIncomplete(Conflict):
    slug, title = "upload-incomplete", "Upload has missing parts"


class TooManyOpenUploads(VihubError):
    status, slug, title = 429, "too-many-open-uploads", "Too many open uploads"


class TooManyCompletes(VihubError):
    status, slug, title = 429, "too-many-completes", "Too many uploads being completed"


class ChecksumMismatch(Unprocessable):
    slug, title = "checksum-mismatch", "Checksum mismatch"


def part_key(upload_id: str, part_number: int, sha256: str) -> str:
    """A part's blob, named by its digest: a part sent again with other bytes goes to a new
    key, so the blob a recorded part names never changes under a complete that reads it
    (the replaced one is removed with the upload's prefix)."""
    return f"uploads/{upload_id}/{part_number:05d}-{sha256}"


def part_count(upload: Upload) -> int:
    return max(1, math.ceil(upload.size_bytes / upload.part_bytes))


def expected_part_size(upload: Upload, part_number: int) -> int:
    count = part_count(upload)
    return upload.part_bytes if part_number < count else upload.size_bytes - (count - 1) * upload.part_bytes


def max_part_bytes(settings: Settings) -> int:
    return min(settings.uploads.max_part_bytes, settings.quotas.max_upload_bytes)


def scratch_dir(settings: Settings) -> Path:
    path = settings.uploads.tmp_dir if settings.uploads.tmp_dir is not None else settings.home / "tmp"
    path = Path(path).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- create / status / abort -------------------------------------------------------------


def create(runtime: Runtime, tenant: TenantRef, body: UploadCreate) -> UploadOut:
    settings = runtime.settings
    limit = settings.uploads.max_bytes
    if body.size_bytes > limit:
        raise PayloadTooLarge(f"The file is {body.size_bytes} bytes; chunked uploads take at most {limit} "
                              "(uploads.max_bytes).", pointer="/size_bytes", limit=limit)
    largest = max_part_bytes(settings)
    part_bytes = min(body.part_bytes or settings.uploads.default_part_bytes, largest)
    if math.ceil(body.size_bytes / part_bytes) > MAX_PARTS:
        part_bytes = math.ceil(body.size_bytes / MAX_PARTS)
        if part_bytes > largest:  # pragma: no cover - needs max_bytes > MAX_PARTS * largest
            raise PayloadTooLarge("The file needs more than 10000 parts.", pointer="/size_bytes")
    _purge_expired(runtime, tenant.id)  # expired uploads do not count against the caps
    with runtime.sessionmaker.begin() as session:
        repo = UploadRepository(session)
        # Serialise this tenant's creates so that concurrent ones cannot overshoot the caps.
        _lock_tenant(session, tenant.id)
        count, declared = repo.open_usage(tenant.id, utcnow())
        uploads_cfg = settings.uploads
        if count >= uploads_cfg.max_open_per_tenant:
            raise TooManyOpenUploads(
                f"This account has {count} open uploads (the limit is {uploads_cfg.max_open_per_tenant}); "
                "complete or DELETE one first.", limit=uploads_cfg.max_open_per_tenant)
        if declared + body.size_bytes > uploads_cfg.max_open_bytes_per_tenant:
            raise TooManyOpenUploads(
                f"This account's open uploads declare {declared} bytes; {body.size_bytes} more would pass "
                f"the limit of {uploads_cfg.max_open_bytes_per_tenant}; complete or DELETE one first.",
                limit=uploads_cfg.max_open_bytes_per_tenant)
        upload = repo.create(
            tenant.id, size_bytes=body.size_bytes, sha256=body.sha256, part_bytes=part_bytes,
            expires_at=utcnow() + timedelta(seconds=settings.uploads.expire_after_s),
            name=body.name, filename=body.filename, content_type=body.content_type,
        )
        out = _out(upload, [])
    return out


def _lock_tenant(session: Session, tenant_id: str) -> None:
    from sqlalchemy import select

    from store.models import Tenant

    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def _purge_expired(runtime: Runtime, tenant_id: str) -> None:
    """Abort this tenant's expired uploads and delete their parts (best effort: a failure
    leaves them for the next create or the sweeper)."""
    try:
        purge_expired(runtime.sessionmaker, blob_store(runtime.settings), utcnow(), tenant_id=tenant_id, limit=20)
    except Exception:  # noqa: BLE001 - housekeeping must not fail a new upload
        log.warning("could not purge expired uploads of tenant %s", tenant_id, exc_info=True)


def status(runtime: Runtime, tenant: TenantRef, upload_id: str) -> UploadOut:
    with runtime.sessionmaker() as session:
        upload = _get(session, tenant, upload_id)
        return _out(upload, UploadRepository(session).parts(upload.id))


def abort(runtime: Runtime, tenant: TenantRef, upload_id: str) -> None:
    with runtime.sessionmaker.begin() as session:
        upload = _get(session, tenant, upload_id)
        repo = UploadRepository(session)
        if not repo.abort(upload.id):
            session.refresh(upload)
            if upload.state == "completing":
                # Its parts are being read: deleting them now would break the complete.
                raise UploadNotOpen("The upload is being completed.", state=upload.state)
    blob_store(runtime.settings).delete_prefix(f"uploads/{upload.id}")


def _get(session: Session, tenant: TenantRef, upload_id: str) -> Upload:
    upload = UploadRepository(session).get_for_tenant(tenant.id, upload_id) if is_resource_id(upload_id) else None
    if upload is None:
        raise UploadNotFound(f"No upload {upload_id!r} in this account.")
    return upload


def _open_upload(runtime: Runtime, tenant: TenantRef, upload_id: str) -> Upload:
    with runtime.sessionmaker() as session:
        upload = _get(session, tenant, upload_id)
    if upload.state != "open":
        raise UploadNotOpen(f"The upload is {upload.state}.", state=upload.state)
    if upload.expires_at < utcnow():
        raise UploadNotOpen("The upload expired; start a new one.", state="expired")
    return upload


def _out(upload: Upload, parts: list[Any]) -> UploadOut:
    received = {p.part_number for p in parts}
    return UploadOut(
        id=upload.id, state=upload.state, size_bytes=upload.size_bytes, sha256=upload.sha256,
        part_bytes=upload.part_bytes, part_count=part_count(upload),
        parts=[UploadPartOut(part_number=p.part_number, size_bytes=p.size_bytes, sha256=p.sha256) for p in parts],
        missing_parts=[n for n in range(1, part_count(upload) + 1) if n not in received],
        name=upload.name, filename=upload.filename, dataset_id=upload.dataset_id,
        created_at=upload.created_at, expires_at=upload.expires_at,
    )


# -- parts --------------------------------------------------------------------------------


async def put_part(runtime: Runtime, tenant: TenantRef, upload_id: str, part_number: int, declared_sha256: str | None,
                   body: AsyncIterator[bytes]) -> UploadPartOut:
    upload = await run_in_threadpool(_open_upload, runtime, tenant, upload_id)
    count = part_count(upload)
    if not 1 <= part_number <= count:
        raise Unprocessable(f"Part numbers run from 1 to {count} for this upload.",
                            errors=[{"pointer": "/part_number", "detail": f"must be 1..{count}"}])
    digest_hex = (declared_sha256 or "").strip().lower()
    if len(digest_hex) != 64 or any(c not in "0123456789abcdef" for c in digest_hex):
        raise Unprocessable("Send the part's sha256 (lowercase hex) in the X-Content-SHA256 header.",
                            errors=[{"pointer": "/headers/X-Content-SHA256", "detail": "64 hex digits required"}])
    expected = expected_part_size(upload, part_number)
    fd, tmp = tempfile.mkstemp(prefix="part-", dir=scratch_dir(runtime.settings))
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in body:
                size += len(chunk)
                if size > expected:
                    raise Unprocessable(f"Part {part_number} must be {expected} bytes; more arrived.",
                                        errors=[{"pointer": "/body", "detail": f"expected {expected} bytes"}])
                digest.update(chunk)
                out.write(chunk)  # page cache: no event-loop stall worth a thread hop
        if size != expected:
            raise Unprocessable(f"Part {part_number} must be {expected} bytes; {size} arrived.",
                                errors=[{"pointer": "/body", "detail": f"expected {expected} bytes"}])
        if digest.hexdigest() != digest_hex:
            raise ChecksumMismatch(f"Part {part_number}'s sha256 is {digest.hexdigest()}, not the declared "
                                   f"{digest_hex}; send it again.", part_number=part_number)
        await run_in_threadpool(_store_part, runtime, upload.id, part_number, Path(tmp), size, digest_hex)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return UploadPartOut(part_number=part_number, size_bytes=size, sha256=digest_hex)


def _store_part(runtime: Runtime, upload_id: str, part_number: int, path: Path, size: int, sha256: str) -> None:
    blobs = blob_store(runtime.settings)
    key = part_key(upload_id, part_number, sha256)
    blobs.put_file(key, path)  # before the row
    with runtime.sessionmaker.begin() as session:
        repo = UploadRepository(session)
        # Row-locked: a complete or an abort that started while the body streamed has
        # moved the upload on; then this part is not recorded and its blob not kept.
        upload = repo.lock_open(upload_id)
        if upload is not None:
            repo.put_part(upload_id, part_number, size, sha256)
            return
        state = session.scalar(select(Upload.state).where(Upload.id == upload_id))
    if state != "completing":  # a completing upload's parts are deleted when it ends
        blobs.delete(key)
    raise UploadNotOpen(f"The upload is {state}.", state=state)


# -- complete -----------------------------------------------------------------------------


def complete(runtime: Runtime, tenant: TenantRef, upload_id: str) -> DatasetOut:
    from api.datasets.service import _out as dataset_out

    settings = runtime.settings
    with runtime.sessionmaker() as session:
        upload = _get(session, tenant, upload_id)
        parts = UploadRepository(session).parts(upload.id)
        if upload.state == "complete" and upload.dataset_id is not None:
            dataset = DatasetRepository(session).get_for_tenant(tenant.id, upload.dataset_id)
            if dataset is not None:
                return dataset_out(dataset, False)
    if upload.state != "open" and upload.state != "completing":
        raise UploadNotOpen(f"The upload is {upload.state}.", state=upload.state)
    if upload.expires_at < utcnow():
        raise UploadNotOpen("The upload expired; start a new one.", state="expired")
    missing = [n for n in range(1, part_count(upload) + 1) if n not in {p.part_number for p in parts}]
    if missing:
        raise UploadIncomplete(f"{len(missing)} part(s) missing, first {missing[:10]}.", missing_parts=missing[:100])
    now = utcnow()
    stale_before = now - timedelta(seconds=COMPLETING_STALE_S)
    with runtime.sessionmaker.begin() as session:
        repo = UploadRepository(session)
        _lock_tenant(session, tenant.id)  # concurrent claims cannot overshoot the cap
        limit = settings.uploads.max_completing_per_tenant
        if upload.state == "open" and repo.completing_count(tenant.id, stale_before) >= limit:
            raise TooManyCompletes(f"This account already has {limit} uploads being completed; retry when one "
                                   "has finished.", headers={"Retry-After": "5"}, limit=limit)
        claimed = repo.claim(upload.id, now, stale_before)
    if not claimed:
        with runtime.sessionmaker() as session:
            state = session.scalar(select(Upload.state).where(Upload.id == upload.id))
        if state == "complete":  # a concurrent complete finished first
            return complete(runtime, tenant, upload_id)
        raise UploadNotOpen(f"The upload is {state}; retry later." if state == "completing"
                            else f"The upload is {state}.", state=state)
    try:
        out = _assemble(runtime, tenant, upload)
    except _Undecodable as exc:
        # The parts are the declared file, and it is not a dataset: no retry can succeed,
        # so the upload ends here and its parts go (they would hold the tenant's quota).
        with runtime.sessionmaker.begin() as session:
            UploadRepository(session).reject(upload.id)
        blob_store(settings).delete_prefix(f"uploads/{upload.id}")
        raise exc.error from None
    except BaseException:
        with runtime.sessionmaker.begin() as session:
            UploadRepository(session).release(upload.id)
        raise
    blob_store(settings).delete_prefix(f"uploads/{upload.id}")
    return out


def _assemble(runtime: Runtime, tenant: TenantRef, upload: Upload) -> DatasetOut:
    """Concatenate, verify, decode and store a claimed upload's parts (their list re-read
    under the claim: no part can change any more)."""
    from api.datasets.service import _out as dataset_out

    settings = runtime.settings
    with runtime.sessionmaker() as session:
        parts = UploadRepository(session).parts(upload.id)
    missing = [n for n in range(1, part_count(upload) + 1) if n not in {p.part_number for p in parts}]
    if missing:  # pragma: no cover - parts are never deleted from an open upload
        raise UploadIncomplete(f"{len(missing)} part(s) missing, first {missing[:10]}.", missing_parts=missing[:100])
    blobs = blob_store(settings)
    with _scratch(settings) as folder:
        assembled = folder / "upload"
        digest = hashlib.sha256()
        with open(assembled, "wb") as out:
            for part in parts:
                for chunk in blobs.iter_chunks(part_key(upload.id, part.part_number, part.sha256)):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != upload.sha256:
            raise ChecksumMismatch(f"The assembled file's sha256 is {digest.hexdigest()}, not the declared "
                                   f"{upload.sha256}.")
        canonical = folder / "canonical.npz"
        try:
            fields, fmt = large.canonicalize_file(
                assembled, canonical, filename=upload.filename, content_type=upload.content_type,
                max_decoded_bytes=settings.uploads.max_dataset_bytes,
                in_memory_max_bytes=settings.uploads.in_memory_max_bytes,
            )
        except VihubError as exc:
            if 400 <= exc.status < 500:
                raise _Undecodable(exc) from exc
            raise
        assembled.unlink()
        sha256 = file_sha256(canonical)
        key = dataset_key(sha256)
        size = canonical.stat().st_size
        if blobs.size(key) != size:
            blobs.put_file(key, canonical)  # before the row names it
    with runtime.sessionmaker.begin() as session:
        dataset, created = DatasetRepository(session).get_or_create(
            tenant.id, sha256, None, fields, fmt, name=upload.name or upload.filename, blob_key=key,
            size_bytes=size)
        UploadRepository(session).complete(upload.id, dataset.id)
        return dataset_out(dataset, created)


class _Undecodable(Exception):
    """The assembled file is the declared one but is refused as a dataset (``error``)."""

    def __init__(self, error: VihubError) -> None:
        super().__init__(str(error))
        self.error = error


@contextmanager
def _scratch(settings: Settings):  # type: ignore[no-untyped-def]
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=scratch_dir(settings)))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
