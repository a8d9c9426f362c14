"""An in-process fake of the vihub REST API for unit tests (``httpx.MockTransport``).

Shapes follow ``api/jobs/schemas.py`` and ``api/jobs/results_router.py``; no server code is
imported, so these tests run where only the client is installed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
from vihub_client import AsyncClient, Client

Handler = Callable[[httpx.Request, dict[str, str]], httpx.Response]


def job_json(job_id: str = "job_1", state: str = "queued", step: int = 0, steps: int = 100,
             loss: float | None = None, error: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
             **extra: Any) -> dict[str, Any]:
    base = f"/v1/jobs/{job_id}"
    return {
        "id": job_id,
        "state": state,
        "progress": {"step": step, "steps": steps, "loss": loss, "smoothed_loss": loss,
                     "steps_per_s": 100.0 if step else None, "eta_s": (steps - step) / 100.0 if step else None},
        "created_at": "2026-11-27T13:00:00Z",
        "started_at": "2026-11-27T13:00:01Z" if state != "queued" else None,
        "finished_at": "2026-11-27T13:00:05Z" if state in ("succeeded", "failed", "cancelled") else None,
        "error": error,
        "attempts": 1,
        "queue": "cpu",
        "labels": labels or {},
        "dataset_id": None,
        "model": {"catalog": "eight_schools_noncentered"},
        "links": {k: f"{base}/{k}" for k in ("events", "cancel", "params", "loss", "samples", "log_probs",
                                             "diagnostics", "summary", "predict")} | {"self": base},
        **extra,
    }


def problem(status: int, slug: str, title: str, detail: str | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> httpx.Response:
    body = {"type": f"https://vihub.dev/problems/{slug}", "title": title, "status": status, **extra}
    if detail:
        body["detail"] = detail
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json", **(headers or {})})


def sse(*events: tuple[str, Any, int | None], retry_ms: int | None = 10) -> bytes:
    chunks = [f"retry: {retry_ms}\n\n"] if retry_ms is not None else []
    for name, data, event_id in events:
        lines = [f"event: {name}"]
        if event_id is not None:
            lines.append(f"id: {event_id}")
        lines.append("data: " + json.dumps(data))
        chunks.append("\n".join(lines) + "\n\n")
        chunks.append(": keep-alive\n\n")
    return "".join(chunks).encode()


class FakeServer:
    """Routes ``(METHOD, path regex)`` to handlers; records every request."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[httpx.Request] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.insert(0, (method, re.compile(f"^{pattern}$"), handler))
            return handler

        return register

    def add(self, method: str, pattern: str, *responses: httpx.Response | Callable[..., httpx.Response]) -> None:
        """Answer with the given responses in turn (the last one repeats)."""
        queue = list(responses)

        def handler(request: httpx.Request, params: dict[str, str]) -> httpx.Response:
            item = queue.pop(0) if len(queue) > 1 else queue[0]
            return item(request, params) if callable(item) else _copy(item)

        self.route(method, pattern)(handler)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for method, pattern, handler in self.routes:
            match = pattern.match(request.url.path)
            if method == request.method and match:
                return handler(request, match.groupdict())
        return problem(404, "not-found", "Not found", f"No route matches {request.method} {request.url.path}.")

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]

    def client(self, **kwargs: Any) -> Client:
        client = Client("http://vihub.test", kwargs.pop("api_key", "key-1"), transport=httpx.MockTransport(self), **kwargs)
        client._transport.sleep = self.sleeps.append  # type: ignore[assignment]
        return client

    def async_client(self, **kwargs: Any) -> AsyncClient:
        client = AsyncClient("http://vihub.test", kwargs.pop("api_key", "key-1"),
                             transport=httpx.MockTransport(self), **kwargs)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        client._transport.sleep = sleep  # type: ignore[assignment]
        return client

    @property
    def sleeps(self) -> list[float]:
        if not hasattr(self, "_sleeps"):
            self._sleeps: list[float] = []
        return self._sleeps


def _copy(response: httpx.Response) -> httpx.Response:
    return httpx.Response(response.status_code, headers=response.headers, content=response.content)
