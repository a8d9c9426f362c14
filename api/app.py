"""The FastAPI application factory: ``uvicorn api.app:create_app --factory``.

``create_app(settings)`` wires the resource routers, the problem+json error handlers,
gzip, request metrics and a lifespan that owns the process-wide resources:

- the SQLAlchemy engine and sessionmaker (one transaction per request, see ``deps``);
- the bounded, spawn-context process pool that runs submission dry runs and predictions
  (model code never runs on the event loop nor in the API process);
- the Celery publisher client (``send_task`` by name; ``worker/`` is never imported).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from api.dryrun import DryRunPool
from api.errors import install_error_handlers
from api.hardening import (
    ErrorBoundaryMiddleware,
    JsonGuardMiddleware,
    UrlGuardMiddleware,
    json_value_limit,
)
from api.limits import BodyLimitMiddleware
from api.metrics import ApiMetrics, MetricsMiddleware
from api.publisher import JobPublisher

log = logging.getLogger("vihub.api")

API_VERSION = "1"


@dataclass
class ApiOptions:
    """API-process knobs. Read from ``settings.api`` when the settings class has that
    section, else these defaults (see docs/operations.md)."""

    dry_run_workers: int = 2
    dry_run_per_tenant: int = 1
    dry_run_time_limit_s: float = 20.0
    dry_run_queue_wait_s: float = 30.0
    warm_up_pool: bool = True
    sse_poll_s: float = 0.5
    sse_max_s: float = 3600.0
    # How long an API key -> tenant lookup is reused (a revoked key works this much longer).
    auth_cache_ttl_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> ApiOptions:
        section = getattr(settings, "api", None)
        if section is None:
            return cls()
        known = {k: getattr(section, k) for k in cls.__dataclass_fields__ if hasattr(section, k)}
        return cls(**known)


@dataclass
class Runtime:
    """Process-wide resources, created in the lifespan and reached through ``deps``."""

    settings: Any
    options: ApiOptions
    engine: Any
    sessionmaker: Any
    dry_runs: DryRunPool
    publisher: JobPublisher
    metrics: ApiMetrics
    tenants: Any = None  # api.deps.TenantCache


def create_app(settings: Any = None, *, options: ApiOptions | None = None) -> FastAPI:
    from store.settings import get_settings

    settings = settings if settings is not None else get_settings()
    options = options or ApiOptions.from_settings(settings)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = _start_runtime(settings, options, metrics)
        app.state.runtime = runtime
        try:
            yield
        finally:
            runtime.dry_runs.shutdown()
            runtime.publisher.close()
            runtime.engine.dispose()

    app = FastAPI(
        title="vihub",
        version=_vihub_version(),
        summary="Hosted variational inference: submit a Pyro model, get fitted parameters, "
        "samples and diagnostics over REST.",
        lifespan=lifespan,
        openapi_tags=[
            {"name": "jobs", "description": "Submit, follow, cancel and delete SVI jobs."},
            {"name": "results", "description": "Fitted parameters, loss curves, samples, log-probs, diagnostics."},
            {"name": "datasets", "description": "Upload data once, reuse it by id."},
            {"name": "catalog", "description": "Built-in models with example data."},
            {"name": "validate", "description": "The validation pass without a run."},
            {"name": "sweeps", "description": "Sweeps over spec fields and comparison tables of jobs."},
            {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
        ],
    )
    app.state.settings = settings
    app.state.options = options
    app.state.metrics = metrics
    install_error_handlers(app)
    _include_routers(app)
    # SSE is never buffered for compression (Starlette excludes text/event-stream); npz
    # is compressed already.
    app.add_middleware(GZipMiddleware, minimum_size=1024,
                       exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/x-npz"))
    # JSON bodies: nesting depth (400) and value count (413) checked before any parse;
    # inside the body limit, so what it buffers is bounded.
    app.add_middleware(JsonGuardMiddleware, max_values=json_value_limit(settings.quotas.max_dataset_bytes))
    # NUL in the URL path, query or a header: 400 before any route or body is read.
    app.add_middleware(UrlGuardMiddleware)
    # Any request body, JSON or upload, is bounded while it streams (413 problem+json).
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.quotas.max_upload_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    # Outermost: no exception ever reaches the server (which would drop the connection).
    app.add_middleware(ErrorBoundaryMiddleware)
    return app


def _include_routers(app: FastAPI) -> None:
    from api.catalog.router import router as catalog_router
    from api.dashboard.router import router as dashboard_router
    from api.datasets.router import router as datasets_router
    from api.health.router import router as health_router
    from api.jobs.results_router import router as results_router
    from api.jobs.router import router as jobs_router
    from api.validate.router import router as validate_router

    app.include_router(health_router)
    app.include_router(jobs_router, prefix="/v1")
    app.include_router(results_router, prefix="/v1")
    app.include_router(datasets_router, prefix="/v1")
    app.include_router(catalog_router, prefix="/v1")
    app.include_router(validate_router, prefix="/v1")
    from api.webhooks.router import router as webhooks_router

    app.include_router(webhooks_router, prefix="/v1")
    from api.sweeps import include_routers as include_sweep_routers

    include_sweep_routers(app)  # /v1/sweeps, /v1/compare, /v1/jobs/{id}/ppc, /v1/jobs/{id}/continue
    # The dashboard page (/) and its packaged assets (/ui/...); not in the OpenAPI schema.
    app.include_router(dashboard_router)


def _start_runtime(settings: Any, options: ApiOptions, metrics: ApiMetrics) -> Runtime:
    from sqlalchemy.orm import sessionmaker as make_sessionmaker

    from store.db import make_engine

    if settings.is_sqlite:
        settings.ensure_home()
    # The app owns its engine (not the store's process-wide cache) so that several apps in
    # one process (tests) and the lifespan's dispose() stay independent.
    engine = make_engine(
        settings.database_url,
        echo=settings.database_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )
    # Objects stay readable after the request's commit, when responses are serialised.
    sessionmaker = make_sessionmaker(bind=engine, expire_on_commit=False)
    sandbox = settings.sandbox
    dry_runs = DryRunPool(
        max_workers=options.dry_run_workers,
        per_tenant=options.dry_run_per_tenant,
        time_limit_s=options.dry_run_time_limit_s,
        queue_wait_s=options.dry_run_queue_wait_s,
        memory_bytes=None if sandbox.dry_run_memory_mb is None else sandbox.dry_run_memory_mb * 1024 * 1024,
        cpu_seconds=sandbox.dry_run_cpu_seconds,
        max_result_bytes=sandbox.max_result_mb * 1024 * 1024,
    )
    if options.warm_up_pool:
        dry_runs.warm_up()
    publisher = JobPublisher(settings)
    from api.deps import TenantCache

    runtime = Runtime(settings, options, engine, sessionmaker, dry_runs, publisher, metrics,
                      tenants=TenantCache(ttl_s=options.auth_cache_ttl_s))

    def count_jobs() -> dict[str, int]:
        from api.jobs import service

        with sessionmaker() as session:
            return service.count_by_state(session)

    metrics.watch_jobs(count_jobs)
    return runtime


def _vihub_version() -> str:
    try:
        from vihub import __version__

        return str(__version__)
    except Exception:
        return "0.1.0"
