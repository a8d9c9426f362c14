"""The API process's resources, made once in the app's lifespan and reached through ``deps``.

``Runtime`` holds the settings, the database engine and sessionmaker, the dry-run pool,
the broker publisher, the metrics, the API key cache and the per-process helpers the
request path needs (the executors and the dry-run cache below). ``TenantRef`` is the
authenticated tenant as services see it. This module imports no router or service, so
every one of them may import it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.dryrun import DryRunPool
from api.metrics import ApiMetrics
from common.broker import JobPublisher
from common.settings import Settings
from store.db import make_engine


@dataclass(frozen=True)
class TenantRef:
    """The authenticated tenant as requests use it (services only need its id)."""

    id: str
    name: str


class TenantCache:
    """API key hash -> tenant, for ``ttl_s`` seconds, per process.

    Saves the key and tenant lookups on every request (pollers hit ``GET /v1/jobs/{id}``
    many times a second), and in embedded mode the default tenant's upsert, which on
    SQLite would take the write lock on every read. A revoked key stops working within
    ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, TenantRef]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> TenantRef | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: str, tenant: TenantRef) -> TenantRef:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, tenant)
        return tenant


class DryRunCache:
    """Passed dry-run reports by ``api.jobs.service.dry_run_key``: bounded (LRU) and
    short-lived (TTL); ``max_entries`` or ``ttl_s`` of 0 turns it off."""

    def __init__(self, max_entries: int, ttl_s: float) -> None:
        self.max_entries, self.ttl_s = max_entries, ttl_s
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or time.monotonic() - hit[0] > self.ttl_s:
                self._entries.pop(key, None)
                return None
            self._entries.move_to_end(key)
            return hit[1]

    def put(self, key: str, report: dict[str, Any]) -> None:
        if self.max_entries <= 0 or self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), report)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


@dataclass
class Runtime:
    """Process-wide resources of one app (several apps in one process stay independent)."""

    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    dry_runs: DryRunPool
    publisher: JobPublisher
    metrics: ApiMetrics
    tenants: TenantCache
    dry_run_cache: DryRunCache
    # Threads that only end request transactions, one per connection the engine can hand
    # out, so a session holding a connection always gets a thread to give it back
    # (``api.deps``; never the shared threadpool).
    release_executor: ThreadPoolExecutor
    # Threads that wait on the dry-run pool: a burst of submits queues here without holding
    # the threadpool's tokens, so reads keep being served (``api.jobs.service``).
    dry_run_executor: ThreadPoolExecutor
    # One semaphore per tenant with trial runs in flight (``api.dry_run_per_tenant`` each).
    tenant_gates: weakref.WeakValueDictionary[str, asyncio.Semaphore] = field(
        default_factory=weakref.WeakValueDictionary)

    @classmethod
    def start(cls, settings: Settings, metrics: ApiMetrics) -> Runtime:
        """Open the engine, start the dry-run pool (warmed up unless ``api.warm_up_pool``
        is off) and make the helpers; ``close`` undoes it."""
        if settings.is_sqlite:
            settings.ensure_home()
        api = settings.api
        # The app owns its engine (not the store's process-wide cache) so that several apps
        # in one process (tests) and the lifespan's dispose() stay independent.
        engine = make_engine(
            settings.database.url,
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
            max_overflow=settings.database.max_overflow,
        )
        sandbox = settings.sandbox
        dry_runs = DryRunPool(
            max_workers=api.dry_run_workers,
            per_tenant=api.dry_run_per_tenant,
            time_limit_s=api.dry_run_time_limit_s,
            queue_wait_s=api.dry_run_queue_wait_s,
            memory_bytes=None if sandbox.dry_run_memory_mb is None else sandbox.dry_run_memory_mb * 1024 * 1024,
            cpu_seconds=sandbox.dry_run_cpu_seconds,
            max_result_bytes=sandbox.max_result_mb * 1024 * 1024,
        )
        if api.warm_up_pool:
            dry_runs.warm_up()
        connections = max(15, settings.database.pool_size + settings.database.max_overflow) + 1
        return cls(
            settings=settings,
            engine=engine,
            # Objects stay readable after the request's commit, when responses are serialised.
            sessionmaker=sessionmaker(bind=engine, expire_on_commit=False),
            dry_runs=dry_runs,
            publisher=JobPublisher(settings),
            metrics=metrics,
            tenants=TenantCache(ttl_s=api.auth_cache_ttl_s),
            dry_run_cache=DryRunCache(api.dry_run_cache_entries, api.dry_run_cache_ttl_s),
            release_executor=ThreadPoolExecutor(max_workers=connections, thread_name_prefix="vihub-db-release"),
            dry_run_executor=ThreadPoolExecutor(max_workers=max(2, 2 * api.dry_run_workers),
                                                thread_name_prefix="vihub-dry-run"),
        )

    def close(self) -> None:
        self.dry_runs.shutdown()
        self.publisher.close()
        self.dry_run_executor.shutdown(wait=False, cancel_futures=True)
        self.release_executor.shutdown(wait=True)
        self.engine.dispose()
