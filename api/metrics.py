"""Prometheus metrics of the API: request counts and latency by route template, jobs by state.

Each app gets its own ``CollectorRegistry`` (tests create many apps in one process).
Request metrics are labelled by the matched route *template* (``/v1/jobs/{job_id}``), never
the raw path (an unmatched path is ``(unmatched)``), and by method only from the known
HTTP methods (any other token is ``OTHER``), so label cardinality stays bounded. Jobs by
state are read from the database at scrape time by a custom collector.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("vihub.api.metrics")

# Any token is a valid HTTP method; only these become label values (others: ``OTHER``).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vihub_http_requests", "HTTP requests by route template, method and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "vihub_http_request_duration_seconds", "Request latency by route template",
            ["method", "route"], registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.jobs_published = Counter(
            "vihub_jobs_published", "Job ids published to the broker, by outcome",
            ["outcome"], registry=self.registry,
        )

    def watch_jobs(self, count_by_state: Callable[[], Mapping[str, int]]) -> None:
        # A second lifespan of the same app (tests reopen clients) replaces the collector.
        previous = getattr(self, "_jobs_collector", None)
        if previous is not None:
            self.registry.unregister(previous)
        self._jobs_collector = _JobsByState(count_by_state)
        self.registry.register(self._jobs_collector)


class _JobsByState:
    def __init__(self, count_by_state: Callable[[], Mapping[str, int]]) -> None:
        self._count = count_by_state

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("vihub_jobs", "Jobs in the database by state", labels=["state"])
        try:
            for state, count in sorted(self._count().items()):
                family.add_metric([state], count)
        except Exception:
            log.warning("could not count jobs by state", exc_info=True)
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Describing must not touch the database at registration time.
        return []


class MetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware: it would buffer SSE streams)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            method = scope.get("method", "GET")
            method = method if method in KNOWN_METHODS else "OTHER"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def _route_template(scope: Mapping[str, Any]) -> str:
    # FastAPI >= 0.16x resolves included routers lazily: the full template (with the
    # include prefix) is on the effective route context, the route itself has its own.
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    path = getattr(context, "path_format", None)
    if isinstance(path, str):
        return path
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "(unmatched)"
