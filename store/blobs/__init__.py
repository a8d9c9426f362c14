"""The blob store: one interface for the big bytes of vihub (datasets, checkpoints,
large result artifacts), with the local filesystem and the S3 protocol behind it.

``blob_store(settings) -> BlobStore`` gives the process's store (cached per
configuration). Keys are relative, ``/``-separated, made of ``[A-Za-z0-9._-]``
segments (``datasets/<sha256>.npz``, ``artifacts/<job_id>/checkpoint-<sha256>``,
``uploads/<upload_id>/00001-<sha256>``). Postgres keeps the metadata (key, size, sha256); a
blob is written before the row that names it is committed, so a committed row always
points at a complete blob (a crash in between leaves an orphan blob, never a dangling
row).

Why boto3 for S3 (and not obstore or fsspec/s3fs): it is the reference client every
S3-compatible server (MinIO, Ceph, R2, moto) tests against, its ``upload_file`` /
``download_file`` stream multi-GB files with multipart transfers and bounded memory, and
its error model (``ClientError`` codes) is documented. obstore is faster but younger and
async-first; s3fs adds an fsspec layer we do not need (we move whole objects).
"""

from __future__ import annotations

import functools

from common.settings import Settings
from store.blobs.base import BlobNotFound, BlobStore, check_key
from store.blobs.cache import DatasetCache
from store.blobs.filesystem import FilesystemBlobStore
from store.blobs.settings import BlobSettings, DatasetCacheSettings, UploadSettings

__all__ = [
    "BlobNotFound",
    "BlobSettings",
    "BlobStore",
    "DatasetCache",
    "DatasetCacheSettings",
    "FilesystemBlobStore",
    "UploadSettings",
    "blob_store",
    "check_key",
    "dataset_cache",
    "dataset_key",
]


def blob_store(settings: Settings) -> BlobStore:
    """The blob store ``settings`` configure (one instance per configuration)."""
    b: BlobSettings = settings.blobs
    if b.backend == "s3":
        return _s3_store(b.s3_bucket, b.s3_prefix, b.s3_endpoint_url, b.s3_region, b.s3_access_key_id,
                         b.s3_secret_access_key, b.s3_create_bucket)
    root = b.root if b.root is not None else settings.home / "blobs"
    return _fs_store(str(root.expanduser()))


@functools.lru_cache(maxsize=16)
def _fs_store(root: str) -> BlobStore:
    return FilesystemBlobStore(root)


@functools.lru_cache(maxsize=16)
def _s3_store(bucket: str, prefix: str, endpoint_url: str | None, region: str, key_id: str | None,
              secret: str | None, create_bucket: bool) -> BlobStore:
    from store.blobs.s3 import S3BlobStore

    return S3BlobStore(bucket, prefix=prefix, endpoint_url=endpoint_url, region=region,
                       access_key_id=key_id, secret_access_key=secret, create_bucket=create_bucket)


def dataset_key(sha256: str) -> str:
    """Where a dataset's canonical NPZ lives: content-addressed, shared by tenants that
    upload the same data (each has its own ``datasets`` row)."""
    return f"datasets/{sha256}.npz"


def dataset_cache(settings: Settings) -> DatasetCache:
    """This host's dataset cache (``dataset_cache.dir``, default ``{home}/dataset-cache``)."""
    c: DatasetCacheSettings = settings.dataset_cache
    root = c.dir if c.dir is not None else settings.home / "dataset-cache"
    return _cache(str(root.expanduser()), c.max_bytes, c.protect_recent_s)


@functools.lru_cache(maxsize=16)
def _cache(root: str, max_bytes: int, protect_recent_s: float) -> DatasetCache:
    return DatasetCache(root, max_bytes, protect_recent_s)
