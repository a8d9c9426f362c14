"""The FastAPI application factory: ``uvicorn api.app:create_app --factory``.

``create_app(settings)`` wires the resource routers, the problem+json error handlers,
gzip, request metrics and a lifespan that owns the process-wide resources:

- the SQLAlchemy engine and sessionmaker (one transaction per request, see ``deps``);
- the bounded, spawn-context process pool that runs submission dry runs and predictions
  (model code never runs on the event loop nor in the API process);
- the Celery publisher client (``common.broker``; ``worker/`` is never imported).

The resources themselves are ``api.runtime.Runtime``; API-process knobs are the
``api`` section of the settings (``ApiSettings``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

from api.capabilities.router import router as capabilities_router
from api.catalog.router import router as catalog_router
from api.compare.router import router as compare_router
from api.dashboard.router import router as dashboard_router
from api.datasets.router import router as datasets_router
from api.errors import install_error_handlers
from api.hardening import (
    ErrorBoundaryMiddleware,
    JsonGuardMiddleware,
    UrlGuardMiddleware,
    json_value_limit,
)
from api.health.router import router as health_router
from api.jobs import service as jobs_service
from api.jobs.results_router import router as results_router
from api.jobs.router import router as jobs_router
from api.limits import BodyLimitMiddleware
from api.metrics import ApiMetrics, MetricsMiddleware
from api.runtime import Runtime
from api.sweeps.router import router as sweeps_router
from api.validate.router import router as validate_router
from api.warm_start.router import router as continue_router
from api.webhooks.router import router as webhooks_router
from common.settings import Settings, get_settings
from common.version import VERSION

log = logging.getLogger("vihub.api")

API_VERSION = "1"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings if settings is not None else get_settings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.start(settings, metrics)
        metrics.watch_jobs(lambda: _count_jobs(runtime))
        # A lifespan may run inside another one of the same app (a test tool with its own
        # client, e.g. schemathesis' ASGI transport): the outer runtime must stay in place.
        outer: Runtime | None = getattr(app.state, "runtime", None)
        app.state.runtime = runtime
        try:
            yield
        finally:
            runtime.close()
            if outer is not None:
                app.state.runtime = outer
                metrics.watch_jobs(lambda: _count_jobs(outer))

    app = FastAPI(
        title="vihub",
        version=VERSION,
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


def _count_jobs(runtime: Runtime) -> dict[str, int]:
    with runtime.sessionmaker() as session:
        return jobs_service.count_by_state(session)


def _include_routers(app: FastAPI) -> None:
    app.include_router(health_router)
    app.include_router(jobs_router, prefix="/v1")
    app.include_router(results_router, prefix="/v1")
    app.include_router(datasets_router, prefix="/v1")
    app.include_router(catalog_router, prefix="/v1")
    app.include_router(validate_router, prefix="/v1")
    app.include_router(webhooks_router, prefix="/v1")
    app.include_router(capabilities_router, prefix="/v1")
    app.include_router(continue_router, prefix="/v1")  # POST /v1/jobs/{id}/continue
    app.include_router(compare_router, prefix="/v1")  # /v1/compare, /v1/jobs/{id}/ppc
    app.include_router(sweeps_router, prefix="/v1")
    # The dashboard page (/) and its packaged assets (/ui/...); not in the OpenAPI schema.
    app.include_router(dashboard_router)
