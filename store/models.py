"""SQLAlchemy 2 models of the vihub store.

Tables: ``tenants``, ``api_keys``, ``datasets``, ``jobs``, ``idempotency_keys``,
``loss_points``, ``artifacts``, ``webhook_deliveries``, ``uploads``, ``upload_parts``. The schema is created only by Alembic (``migrations/``); keep
the initial revision in step with this file.

Conventions:
- ids are UUID4 strings (``String(36)``) so SQLite and Postgres store them alike;
- timestamps are timezone-aware UTC in Python (``UTCDateTime``), ``timestamptz`` on
  Postgres and naive-UTC ISO text on SQLite (ordered comparisons stay correct);
- JSON columns are ``JSONB`` on Postgres and ``JSON`` on SQLite;
- relationships are ``lazy="raise"`` and blob columns are deferred with raiseload: a
  lazy load fails loudly instead of issuing hidden queries or pulling megabytes; the
  repositories load what they need explicitly.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from store.job_states import JobState


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python on both dialects."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            # SQLite stores text: one fixed offset keeps string comparison chronological.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JSONType = JSON().with_variant(JSONB(), "postgresql")
BlobType = LargeBinary().with_variant(BYTEA(), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (UniqueConstraint("name", name="uq_tenants_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Standard Webhooks signing secret (``whsec_...``), made on first use. Kept in clear:
    # the server must compute HMACs with it. The previous one signs too for a while after
    # a rotation (``webhooks.rotation_overlap_s``). See ``WebhookRepository``.
    webhook_secret: Mapped[str | None] = mapped_column(String(128), deferred=True, deferred_raiseload=True)
    webhook_secret_previous: Mapped[str | None] = mapped_column(
        String(128), deferred=True, deferred_raiseload=True
    )
    webhook_secret_rotated_at: Mapped[datetime | None]
    # Jobs of this tenant counted against ``quotas.max_concurrent_jobs``: incremented by a
    # guarded UPDATE (``... WHERE active_jobs < limit``) in the transaction that inserts a
    # job, decremented by the transition that makes a job final. An upper bound of the
    # truth (queued + running jobs); ``TenantRepository.recount_active_jobs`` resets it.
    active_jobs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="tenant", lazy="raise")


class ApiKey(Base):
    """An API key: only its sha256 is stored; ``prefix`` identifies it in listings."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    tenant: Mapped[Tenant] = relationship(back_populates="api_keys", lazy="raise")


class Dataset(Base):
    """A tenant's dataset: the canonical NPZ of its arrays, addressed by sha256.

    ``fields`` is ``{name: {"dtype": str, "shape": [int, ...]}}``. The bytes live either
    in the blob store under ``blob_key`` (uploads) or in ``content`` (small inline data,
    rows from before the blob store); ``content`` is deferred (raiseload): read it with
    ``DatasetRepository.get_content``.
    """

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("tenant_id", "sha256", name="uq_datasets_tenant_sha256"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    fields: Mapped[dict[str, Any]]
    format: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes | None] = mapped_column(BlobType, deferred=True, deferred_raiseload=True)
    blob_key: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """One inference job. ``state`` changes only through ``JobRepository`` transitions."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        # keyset pagination of a tenant's jobs, newest first
        Index("ix_jobs_tenant_created_id", "tenant_id", "created_at", "id"),
        # the sweeper's scans
        Index("ix_jobs_state_lease", "state", "lease_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    spec: Mapped[dict[str, Any]]
    dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT"), index=True
    )
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    webhook: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # sha256 of the request body an Idempotency-Key was first used with (409 on reuse
    # with a different body).
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(16), default="cpu")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # {step, steps, loss, smoothed_loss, steps_per_s, eta_s}
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # problem+json (RFC 9457) when failed/cancelled
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime | None]
    # last time the job id was handed to the broker (API or sweeper)
    published_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    @property
    def is_final(self) -> bool:
        return JobState(self.state) in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` claimed by a submission (``IdempotencyRepository``).

    Claimed with ``INSERT ... ON CONFLICT DO NOTHING`` before the slow part of a submit
    (dry run) and committed at once; ``job_id`` is set in the transaction that inserts the
    job. A claim without a job is "in progress"; ``claim_token`` identifies its owner, so
    a claim taken over after ``claimed_at`` went stale cannot be completed twice.
    """

    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    claim_token: Mapped[str] = mapped_column(String(36))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LossPoint(Base):
    """One step of a job's loss curve; (job_id, step) is the key, so writes are idempotent.

    ``loss`` is NULL for a non-finite loss (SQLite cannot store NaN).
    """

    __tablename__ = "loss_points"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    loss: Mapped[float | None] = mapped_column(Float)


class Artifact(Base):
    """A result blob of a job, one per (job_id, kind); ``put`` replaces it.

    Kinds: see ``ArtifactKind``. ``meta`` holds small facts about the blob (the step of a
    checkpoint). ``content`` is deferred (raiseload): read it with
    ``ArtifactRepository.get_content``.
    """

    __tablename__ = "artifacts"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # In the row (small) or in the blob store under ``blob_key`` (``blobs.inline_max_bytes``).
    content: Mapped[bytes | None] = mapped_column(BlobType, deferred=True, deferred_raiseload=True)
    blob_key: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ArtifactKind:
    """Artifact kinds and their content types."""

    RESULT_JSON = "result_json"
    SAMPLES_NPZ = "samples_npz"
    PARAMS_SAFETENSORS = "params_safetensors"
    LOG_PROBS_NPZ = "log_probs_npz"
    NETCDF = "netcdf"
    PARAM_STORE_PT = "param_store_pt"
    CHECKPOINT = "checkpoint"
    # The checkpoint after the last step (params + optimizer state), kept for warm starts.
    FINAL_CHECKPOINT = "final_checkpoint"
    # Observed sites' values as the model saw them (jobs with outputs.predictive; for /ppc).
    OBSERVED_NPZ = "observed_npz"

    CONTENT_TYPES: ClassVar[dict[str, str]] = {
        RESULT_JSON: "application/json",
        SAMPLES_NPZ: "application/x-npz",
        PARAMS_SAFETENSORS: "application/octet-stream",
        LOG_PROBS_NPZ: "application/x-npz",
        NETCDF: "application/x-netcdf",
        PARAM_STORE_PT: "application/octet-stream",
        CHECKPOINT: "application/octet-stream",
        FINAL_CHECKPOINT: "application/octet-stream",
        OBSERVED_NPZ: "application/x-npz",
    }


class WebhookDelivery(Base):
    """One attempt to deliver a job's webhook (``worker.webhooks``).

    ``webhook_id`` is the Standard Webhooks message id, the same on every attempt (the
    receiver deduplicates on it). ``next_attempt_at`` is set on the latest attempt while
    another one is due, and on an attempt in flight (so a sender that dies mid-request is
    retried); NULL once delivered or given up.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("job_id", "attempt", name="uq_webhook_deliveries_job_attempt"),
        Index("ix_webhook_deliveries_next_attempt_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    event: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    webhook_id: Mapped[str | None] = mapped_column(String(64))
    next_attempt_at: Mapped[datetime | None]


class Upload(Base):
    """A resumable chunked dataset upload (``store.repositories.uploads``).

    The client declares the file's size and sha256 up front; parts of ``part_bytes``
    (the last one shorter) are stored in the blob store under ``uploads/<id>/<n>`` and
    recorded in ``upload_parts`` with their own sha256. ``complete`` assembles them,
    checks the whole file's sha256, decodes it into a dataset and sets ``dataset_id``.
    ``state``: ``open`` -> ``complete`` (or ``aborted``).
    """

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="open")
    name: Mapped[str | None] = mapped_column(String(200))
    filename: Mapped[str | None] = mapped_column(String(200))
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    part_bytes: Mapped[int] = mapped_column(BigInteger)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class UploadPart(Base):
    """One received part of an upload; (upload_id, part_number) is the key, so a part
    sent again (a resumed client) replaces the previous one."""

    __tablename__ = "upload_parts"

    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
