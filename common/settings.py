"""vihub's settings: one pydantic-settings class shared by the API, the worker and the CLI.

Every setting comes from the environment with the ``VIHUB_`` prefix; nested sections use
``__`` (``VIHUB_WORKER__LEASE_SECONDS=30``, ``VIHUB_QUOTAS__MAX_STEPS=50000``).

Defaults are the *embedded* mode: everything lives under ``VIHUB_HOME`` (``~/.vihub``),
the store is SQLite and the Celery broker is kombu's SQLAlchemy transport on a second
SQLite file, so ``vihub up`` needs no server. Production sets ``VIHUB_DATABASE_URL``
(Postgres) and ``VIHUB_BROKER_URL`` (Redis); auth then defaults to ``required``.

The ``database`` and ``broker`` sections also read the flat names the operations guide
has always documented (``VIHUB_DATABASE_URL``, ``VIHUB_DB_POOL_SIZE``, ...; see
``FLAT_NAMES``), as environment variables and as keyword arguments; the sectioned form
(``VIHUB_DATABASE__URL``) wins when both are given.

The ``limits`` section is the model language's own ``inference.limits.Limits`` (a
torch-free dataclass): the operator's limits and the language's are one type.

Why the SQLAlchemy transport for the embedded broker: with Celery 5.7 / kombu 5.7 /
SQLAlchemy 2.1 it works across processes (API publisher + worker consumer, prefork or
solo pool), and it keeps the whole embedded state in two files under ``VIHUB_HOME``.
It has no visibility timeout: a message delivered to a worker that is then SIGKILLed is
not redelivered by the broker. The database is the source of truth, so the sweeper
(lease expiry -> requeue -> republish) covers that case on both brokers.

``get_settings()`` is cached; tests use ``override_settings(...)`` (a context manager)
or ``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inference.limits import Limits

from common.blob_settings import BlobSettings, DatasetCacheSettings, UploadSettings

EMBEDDED_DB_NAME = "vihub.sqlite3"
EMBEDDED_BROKER_NAME = "broker.sqlite3"


class DatabaseSettings(BaseModel):
    """The store; env ``VIHUB_DATABASE__<FIELD>`` (or the flat names of ``FLAT_NAMES``)."""

    url: str = ""  # "" -> sqlite:///{home}/vihub.sqlite3
    echo: bool = False
    # SQLAlchemy pool per process (Postgres; SQLite uses its own pooling).
    pool_size: int = 5
    max_overflow: int = 10


class BrokerSettings(BaseModel):
    """The Celery broker; env ``VIHUB_BROKER__<FIELD>`` (or the flat names of ``FLAT_NAMES``)."""

    url: str = ""  # "" -> sqla+sqlite:///{home}/broker.sqlite3
    # Extra kombu transport options, merged over vihub's (JSON in the environment), e.g.
    # VIHUB_BROKER_TRANSPORT_OPTIONS='{"global_keyprefix": "vihub:"}' to share a Redis.
    transport_options: dict[str, Any] = Field(default_factory=dict)
    # The embedded (SQL) broker has no push: an idle worker looks for a job this often
    # (common.sql_broker). Ignored for Redis, which delivers at once.
    polling_interval_s: float = Field(default=0.02, gt=0, le=10)


# The documented flat names of fields that now live in a section: (section, field).
FLAT_NAMES = {
    "database_url": ("database", "url"),
    "database_echo": ("database", "echo"),
    "db_pool_size": ("database", "pool_size"),
    "db_max_overflow": ("database", "max_overflow"),
    "broker_url": ("broker", "url"),
    "broker_transport_options": ("broker", "transport_options"),
    "webhooks_allow_private": ("webhooks", "allow_private"),
}


class QuotaSettings(BaseModel):
    """Per-tenant quotas, enforced by the API at submission time."""

    max_steps: int = 100_000
    # torch threads one job may ask for (inference.num_threads); unset uses the worker's default.
    max_threads_per_job: int = 4
    max_run_seconds: int = 3_600
    max_dataset_bytes: int = 50 * 1024 * 1024
    max_concurrent_jobs: int = 8
    # Points (member jobs) of one sweep (POST /v1/sweeps); each also takes a concurrent-job slot.
    max_sweep_points: int = 64
    max_upload_bytes: int = 64 * 1024 * 1024


class WorkerSettings(BaseModel):
    """How workers claim, heartbeat, checkpoint and get reclaimed."""

    # A running job whose lease is older than this is presumed dead and reclaimed.
    lease_seconds: int = 60
    # The worker renews its lease this often, from a thread, independent of the engine's
    # progress cadence (a single slow step must not lose the lease).
    heartbeat_seconds: float = 10.0
    checkpoint_every_s: float = 30.0
    progress_every_s: float = 1.0
    max_attempts: int = 3
    soft_time_limit_s: int = 3_900  # above quotas.max_run_seconds: the engine stops first
    hard_time_limit_s: int = 4_200
    # Redis redelivers an unacked message after this; must exceed the hard time limit or a
    # long job would be delivered twice while still running. Tests shorten all three.
    visibility_timeout_s: int | None = None  # None -> hard_time_limit_s + 600
    sweeper_interval_s: float = 15.0
    # A queued job never handed to the broker is published by the sweeper after this; a
    # published one is resent only when the broker queue holds fewer messages than the
    # published queued jobs (its message was lost), and only if sent longer ago than this.
    requeue_after_s: float = 60.0
    # When the broker cannot report its queue depth: resend a published job not claimed
    # for this long (backing off, see worker.sweeper.republish_due).
    republish_after_s: float = 1800.0
    concurrency: int = 1
    # Set by `vihub worker --queues gpu` (GPU memory fragments over many jobs).
    gpu_max_tasks_per_child: int = 20
    # CPU pool processes only relay (jobs run in sandboxes), but Python heaps still creep:
    # recycle them after this many jobs (their forkserver restarts with them, ~10 s).
    cpu_max_tasks_per_child: int = 500
    # Waits between retries of a job's final write after a transient database error
    # (a finished fit is not thrown away for a blip); then the job is retried as usual.
    final_write_retry_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)

    @model_validator(mode="after")
    def _check_limits(self) -> WorkerSettings:
        if self.hard_time_limit_s <= self.soft_time_limit_s:
            raise ValueError("worker.hard_time_limit_s must exceed worker.soft_time_limit_s")
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("worker.heartbeat_seconds must be below worker.lease_seconds")
        if self.visibility_timeout_s is not None and self.visibility_timeout_s <= self.hard_time_limit_s:
            raise ValueError("worker.visibility_timeout_s must exceed worker.hard_time_limit_s")
        return self

    @property
    def effective_visibility_timeout_s(self) -> int:
        if self.visibility_timeout_s is not None:
            return self.visibility_timeout_s
        return self.hard_time_limit_s + 600


class ApiSettings(BaseModel):
    """API-process knobs (``api.runtime.Runtime``); env ``VIHUB_API__<FIELD>``."""

    # Submission dry runs (compile, bind, trace once) run in this many spawned processes.
    dry_run_workers: int = Field(2, ge=1, le=64)
    # Trial runs one tenant may have in flight per API process; more answer 429 at once,
    # so one tenant cannot hold every slot while others wait (keep it below dry_run_workers).
    dry_run_per_tenant: int = Field(1, ge=1, le=64)
    # A submission whose tenant, model, guide, inference settings (but steps/seed) and data
    # shapes passed a dry run within the TTL is not traced again; 0 turns the cache off.
    dry_run_cache_entries: int = Field(1000, ge=0)
    dry_run_cache_ttl_s: float = Field(3600.0, ge=0)
    dry_run_time_limit_s: float = Field(20.0, gt=0)
    # A submit waiting longer than this for a free dry-run process gets a 503.
    dry_run_queue_wait_s: float = Field(30.0, gt=0)
    warm_up_pool: bool = True
    sse_poll_s: float = Field(0.5, gt=0)
    # While a job may end sooner than one sse_poll_s (the first sse_fast_window_s of a
    # stream, or its progress ETA is that close) the stream polls every sse_fast_poll_s:
    # a short job's end is then seen ~0.05 s after it, not up to 0.5 s.
    sse_fast_poll_s: float = Field(0.05, gt=0)
    sse_fast_window_s: float = Field(3.0, ge=0)
    sse_max_s: float = Field(3600.0, gt=0)
    # How long an API key -> tenant lookup is reused (a revoked key works this much longer).
    auth_cache_ttl_s: float = Field(10.0, ge=0)
    # /metrics needs an API key whenever auth is required (any tenant's key); True serves
    # it without one (only where the port is reachable by the scraper alone).
    metrics_public: bool = False
    # A submit whose Idempotency-Key is held by a request still in flight waits this
    # long for that request's job, then answers 409 request-in-progress (Retry-After).
    idempotency_wait_s: float = Field(10.0, ge=0)


class SandboxSettings(BaseModel):
    """OS limits of the processes that run user code (``inference.sandbox``);
    env ``VIHUB_SANDBOX__<FIELD>``. See docs/operations.md, "Isolation".

    Every job and every dry run / predict call runs in its own process forked from a
    pre-warmed forkserver. Memory is address space the process may map *on top of* the
    engine it starts with (torch alone maps several hundred MB of libraries); ``None``
    turns a limit off. CUDA jobs get no address-space limit (the CUDA runtime reserves
    huge virtual ranges); bound GPU workers with the container's memory limit instead.
    """

    # Jobs (worker).
    job_memory_mb: int | None = Field(4096, ge=64)
    # CPU seconds over all threads; None -> quotas.max_run_seconds x 2 (two threads busy).
    job_cpu_seconds: int | None = Field(None, ge=1)
    # Wall-clock SIGKILL deadline; None -> quotas.max_run_seconds + 120 (the engine's own
    # time check stops a run at max_run_seconds; this catches one stuck in native code).
    job_wall_seconds: int | None = Field(None, ge=1)
    # Dry runs and predict calls (API); their wall deadline is api.dry_run_time_limit_s + 2.
    dry_run_memory_mb: int | None = Field(2048, ge=64)
    dry_run_cpu_seconds: int | None = Field(60, ge=1)
    # Largest single message (e.g. a result artifact) a sandbox may send back.
    max_result_mb: int = Field(1024, ge=1)

    def job_limits_for(self, max_run_seconds: int) -> dict[str, int | None]:
        """``ResourceLimits`` fields for a job, with the documented defaults filled in."""
        return {
            "memory_bytes": None if self.job_memory_mb is None else self.job_memory_mb * 1024 * 1024,
            "cpu_seconds": self.job_cpu_seconds if self.job_cpu_seconds is not None else 2 * max_run_seconds,
            "wall_seconds": self.job_wall_seconds if self.job_wall_seconds is not None else max_run_seconds + 120,
        }


class WebhookSettings(BaseModel):
    """Delivery of job-end webhooks (``worker.webhooks``; see docs/webhooks.md)."""

    # Lift the public-address rule of ``common.webhooks.urls`` (tests, a single machine
    # whose receiver is local); multicast and unspecified addresses stay refused.
    allow_private: bool = False
    # Attempts per job event, the first included; then the delivery is given up.
    max_attempts: int = 10
    # Retry n waits uniform(0, min(backoff_max_s, backoff_base_s * 2**(n-1))) ("full jitter").
    backoff_base_s: float = 30.0
    backoff_max_s: float = 6 * 3600.0
    connect_timeout_s: float = 5.0
    timeout_s: float = 10.0
    # After a rotation the previous secret signs next to the new one this long.
    rotation_overlap_s: float = 24 * 3600.0
    # The sweeper sends at most this many due retries per pass.
    batch_size: int = 50
    # A finished job with a webhook and no attempt yet (cancelled by the API while queued,
    # or its worker died right after the commit) is picked up by the sweeper after this.
    catch_up_after_s: float = 30.0
    catch_up_max_age_s: float = 24 * 3600.0
    # That scan reads the recent final jobs: at most this often per process.
    catch_up_every_s: float = 60.0
    # Attempts a sweeper pass sends at once (each waits at most the timeouts above).
    concurrency: int = 4


class Settings(BaseSettings):
    """The one settings class. See the module docstring for the environment mapping."""

    model_config = SettingsConfigDict(
        env_prefix="VIHUB_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(default_factory=lambda: Path("~/.vihub"))
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    auth: Literal["required", "disabled"] | None = None  # None -> see _fill_defaults
    limits: Limits = Field(default_factory=Limits)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    # Blob store, chunked uploads, workers' dataset cache (common/blob_settings.py).
    blobs: BlobSettings = Field(default_factory=BlobSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)
    dataset_cache: DatasetCacheSettings = Field(default_factory=DatasetCacheSettings)
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FlatEnvSource(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_names(cls, data: Any) -> Any:
        """``database_url=...`` (a flat name, from any source) into its section; a value
        the section already has wins."""
        if not isinstance(data, dict) or not FLAT_NAMES.keys() & data.keys():
            return data
        data = dict(data)
        for flat, (section, field) in FLAT_NAMES.items():
            if flat not in data:
                continue
            value = data.pop(flat)
            current = data.get(section)
            if isinstance(current, BaseModel):
                if field not in current.model_fields_set:
                    data[section] = current.model_copy(update={field: value})
            else:
                merged = dict(current or {})
                merged.setdefault(field, value)
                data[section] = merged
        return data

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.home = self.home.expanduser()
        if not self.database.url:
            self.database.url = f"sqlite:///{self.home / EMBEDDED_DB_NAME}"
        self.database.url = normalize_database_url(self.database.url)
        if not self.broker.url:
            self.broker.url = f"sqla+sqlite:///{self.home / EMBEDDED_BROKER_NAME}"
        if self.auth is None:
            # Single-user only when the store is a local SQLite file; any server database
            # is shared and must authenticate.
            self.auth = "disabled" if self.is_sqlite else "required"
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database.url.startswith("sqlite")

    @property
    def auth_required(self) -> bool:
        return self.auth == "required"

    def ensure_home(self) -> Path:
        """Create ``home`` (the embedded database and broker live there)."""
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home


class _FlatEnvSource(PydanticBaseSettingsSource):
    """``VIHUB_DATABASE_URL`` and the other ``FLAT_NAMES`` from the environment (below the
    sectioned variables in priority); ``Settings._fold_flat_names`` puts them in place."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the names directly

    def __call__(self) -> dict[str, Any]:
        prefix = self.config.get("env_prefix", "")
        found: dict[str, Any] = {}
        environ = {k.lower(): v for k, v in os.environ.items()}
        for flat, (_, field) in FLAT_NAMES.items():
            raw = environ.get(f"{prefix}{flat}".lower())
            if raw is None:
                continue
            if field != "transport_options":
                found[flat] = raw  # pydantic coerces the scalars
                continue
            try:
                found[flat] = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"{prefix}{flat.upper()} is not JSON: {exc}") from exc
        return found


def normalize_database_url(url: str) -> str:
    """Point bare Postgres URLs at psycopg 3, the driver vihub ships with."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


_override: Settings | None = None


@functools.lru_cache(maxsize=1)
def _load_settings() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The process's settings (cached). ``override_settings`` replaces them in tests."""
    if _override is not None:
        return _override
    return _load_settings()


get_settings.cache_clear = _load_settings.cache_clear  # type: ignore[attr-defined]


@contextlib.contextmanager
def override_settings(settings: Settings | None = None, **fields: Any) -> Iterator[Settings]:
    """Use ``settings`` (or ``Settings(**fields)``) as the process settings inside the block."""
    global _override
    previous = _override
    _override = settings if settings is not None else Settings(**fields)
    try:
        yield _override
    finally:
        _override = previous
