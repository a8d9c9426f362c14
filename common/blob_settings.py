"""Settings sections of the blob store, chunked uploads and the workers' dataset cache.

They are sections of ``common.settings.Settings`` (``blobs``, ``uploads``,
``dataset_cache``); env ``VIHUB_BLOBS__BACKEND=s3``, ``VIHUB_UPLOADS__MAX_BYTES=...``,
``VIHUB_DATASET_CACHE__MAX_BYTES=...``. See docs/operations.md, "Blob store".
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

GiB = 1024**3
MiB = 1024**2


class BlobSettings(BaseModel):
    """Where datasets, checkpoints and large result artifacts live.

    ``filesystem`` (the embedded default) keeps them under ``root`` (``{home}/blobs``);
    ``s3`` in a bucket of any S3-protocol server (AWS S3, MinIO, Ceph, moto). Postgres
    keeps only the metadata: key, size and sha256.
    """

    backend: Literal["filesystem", "s3"] = "filesystem"
    root: Path | None = None  # None -> {home}/blobs
    s3_bucket: str = "vihub"
    # Keys are written under this prefix ("" or e.g. "prod/"): one bucket, several deployments.
    s3_prefix: str = ""
    # None -> AWS; MinIO / moto / Ceph: "http://minio:9000".
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # None -> boto3's own chain (AWS_ACCESS_KEY_ID, instance profile, ...).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # Create the bucket on first use (docker-compose, tests); production buckets are made
    # by the operator with their own policies.
    s3_create_bucket: bool = False
    # A result artifact or checkpoint at least this large goes to the blob store; smaller
    # ones stay in their Postgres row (one query, no extra round trip). 0: all of them.
    inline_max_bytes: int = Field(1 * MiB, ge=0)


class UploadSettings(BaseModel):
    """Resumable chunked dataset uploads (``/v1/datasets/uploads``)."""

    # The raw file a chunked upload may send (the sum of its parts).
    max_bytes: int = Field(4 * GiB, ge=1)
    # Its decoded arrays (8 bytes per number, 1 per boolean), checked before decoding.
    max_dataset_bytes: int = Field(4 * GiB, ge=1)
    # One part's largest size; also capped by quotas.max_upload_bytes (the body limit).
    max_part_bytes: int = Field(32 * MiB, ge=1024)
    # What the server proposes when the client does not choose.
    default_part_bytes: int = Field(16 * MiB, ge=1024)
    # Per tenant: open (unfinished, unexpired) uploads at once, and the sum of their declared
    # sizes; parts take blob-store space until completed, aborted or expired, so these
    # bound what one tenant can hold there (429 too-many-open-uploads beyond).
    max_open_per_tenant: int = Field(16, ge=1)
    max_open_bytes_per_tenant: int = Field(16 * GiB, ge=1)
    # Per tenant: completes running at once (each assembles and decodes a file in the API:
    # scratch space up to twice its size, memory up to ~7x in_memory_max_bytes for JSON);
    # beyond, complete is 429 too-many-completes (Retry-After; the SDK retries).
    max_completing_per_tenant: int = Field(2, ge=1)
    # An upload not completed within this is refused; its parts are deleted when the same
    # tenant starts its next upload (or on DELETE).
    expire_after_s: float = Field(24 * 3600.0, gt=0)
    # CSV / Parquet / JSON files are decoded in memory up to this size (NPZ is streamed
    # member by member at any size); larger ones are refused with a hint to send NPZ.
    in_memory_max_bytes: int = Field(256 * MiB, ge=1)
    # Scratch space of the API for assembling and canonicalising an upload
    # (None -> {home}/tmp). Needs about twice the largest upload free.
    tmp_dir: Path | None = None
    # The trial run of a submission on a dataset larger than this sees its first rows only
    # (api.datasets.large.trial_fields); the worker fits all of it.
    trial_max_bytes: int = Field(64 * MiB, ge=1)


class DatasetCacheSettings(BaseModel):
    """Each worker host's local copy of the datasets its jobs use, by sha256 (LRU)."""

    dir: Path | None = None  # None -> {home}/dataset-cache
    # Evict least recently used datasets beyond this (a dataset in use is never evicted).
    max_bytes: int = Field(20 * GiB, ge=0)
    # An entry used within this many seconds is not evicted (a job's sandbox may not have
    # mapped it yet); the cache may be over max_bytes until they age.
    protect_recent_s: float = Field(600.0, ge=0)
