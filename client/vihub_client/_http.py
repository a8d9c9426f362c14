"""Transport shared by ``Client`` and ``AsyncClient``: configuration, the retry policy and
one request executor per I/O flavour.

Every API operation is described once as a ``Call`` (see ``_ops``): method, path, query,
body, headers, whether it is safe to retry, and how to parse the response. The sync and
async executors differ only in how they sleep and await; the decision *whether* and *how
long* to wait before a retry lives in ``RetryPolicy`` and is shared.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from vihub_client._version import __version__
# parse_retry_after lives with RateLimited (which reads the header); re-exported here.
from vihub_client.errors import APIConnectionError, error_from_response, parse_retry_after

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
RETRY_STATUSES = frozenset({429, 503})
# Statuses also retried for idempotent requests (a proxy in front of the API restarting).
RETRY_STATUSES_IDEMPOTENT = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Settings:
    base_url: str
    api_key: str | None
    timeout: float | httpx.Timeout
    retries: int
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout: float | httpx.Timeout | None,
        retries: int | None,
        backoff: float | None = None,
    ) -> Settings:
        url = base_url or os.environ.get("VIHUB_URL") or DEFAULT_URL
        key = api_key if api_key is not None else (os.environ.get("VIHUB_API_KEY") or None)
        return cls(
            base_url=url.rstrip("/"),
            api_key=key,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            retries=DEFAULT_RETRIES if retries is None else max(0, int(retries)),
            backoff=0.5 if backoff is None else backoff,
        )

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"vihub-client/{__version__}", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass
class Call:
    """One API request, independent of sync/async."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Safe to resend after the request may have reached the server (GET, or a POST that
    # carries an Idempotency-Key, or one whose effect is idempotent such as cancel).
    idempotent: bool = True
    parse: Callable[[httpx.Response], Any] = lambda r: r.json() if r.content else None
    timeout: float | httpx.Timeout | None = None

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"params": _clean(self.params), "headers": self.headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        if self.files is not None:
            kwargs["files"] = self.files
        if self.data is not None:
            kwargs["data"] = self.data
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return kwargs


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {k: v for k, v in params.items() if v is not None}


class RetryPolicy:
    """Whether to retry, and after how long. Pure: no I/O, so sync and async share it."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter around the nominal value (attempt 0 = first retry)."""
        nominal = min(self.settings.max_backoff, self.settings.backoff * (2**attempt))
        return nominal * (0.5 + 0.5 * self._rng.random())

    def after_response(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        if attempt >= self.settings.retries:
            return None
        statuses = RETRY_STATUSES_IDEMPOTENT if call.idempotent else RETRY_STATUSES
        if response.status_code not in statuses:
            return None
        hinted = parse_retry_after(response.headers.get("retry-after"))
        if hinted is not None:
            return min(hinted, self.settings.max_retry_after)
        return self.backoff(attempt)

    def after_error(self, call: Call, error: httpx.TransportError, attempt: int) -> float | None:
        if attempt >= self.settings.retries:
            return None
        # A connect error means the request never left: always safe to resend.
        if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
            return self.backoff(attempt)
        if call.idempotent and isinstance(error, (httpx.ReadError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError)):
            return self.backoff(attempt)
        return None


def _connection_error(error: httpx.TransportError, settings: Settings) -> APIConnectionError:
    return APIConnectionError(
        "Could not reach the vihub server",
        detail=f"{type(error).__name__} talking to {settings.base_url}: {error}",
    )


def _finish(call: Call, response: httpx.Response) -> Any:
    if response.is_success:
        return call.parse(response)
    raise error_from_response(response)


class SyncTransport:
    def __init__(self, settings: Settings, http: httpx.Client | None = None, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.policy = RetryPolicy(settings)
        self._owns_http = http is None
        self.http = http or httpx.Client(
            base_url=settings.base_url, headers=settings.headers(), timeout=settings.timeout, transport=transport
        )
        self.sleep: Callable[[float], None] = time.sleep

    def send(self, call: Call) -> httpx.Response:
        """Send with retries; returns the final response (success or not)."""
        attempt = 0
        while True:
            try:
                response = self.http.request(call.method, call.path, **call.request_kwargs())
            except httpx.TransportError as error:
                delay = self.policy.after_error(call, error, attempt)
                if delay is None:
                    raise _connection_error(error, self.settings) from error
            else:
                delay = self.policy.after_response(call, response, attempt)
                if delay is None:
                    return response
                response.close()
            self.sleep(delay)
            attempt += 1

    def run(self, call: Call) -> Any:
        return _finish(call, self.send(call))

    def stream(self, call: Call) -> Any:
        """A context manager over a streamed response (no retries: the caller reconnects)."""
        return self.http.stream(call.method, call.path, **call.request_kwargs())

    def close(self) -> None:
        if self._owns_http:
            self.http.close()


class AsyncTransport:
    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.policy = RetryPolicy(settings)
        self._owns_http = http is None
        self.http = http or httpx.AsyncClient(
            base_url=settings.base_url, headers=settings.headers(), timeout=settings.timeout, transport=transport
        )
        self.sleep: Callable[[float], Any] = asyncio.sleep

    async def send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self.http.request(call.method, call.path, **call.request_kwargs())
            except httpx.TransportError as error:
                delay = self.policy.after_error(call, error, attempt)
                if delay is None:
                    raise _connection_error(error, self.settings) from error
            else:
                delay = self.policy.after_response(call, response, attempt)
                if delay is None:
                    return response
                await response.aclose()
            await self.sleep(delay)
            attempt += 1

    async def run(self, call: Call) -> Any:
        return _finish(call, await self.send(call))

    def stream(self, call: Call) -> Any:
        return self.http.stream(call.method, call.path, **call.request_kwargs())

    async def close(self) -> None:
        if self._owns_http:
            await self.http.aclose()
