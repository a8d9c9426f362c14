"""The client's one exception hierarchy.

Every error the service returns is RFC 9457 problem+json; ``error_from_response`` turns it
into a ``VihubError`` subclass chosen by HTTP status, carrying the problem's members
(``type``, ``title``, ``status``, ``detail``, ``instance`` and any extension members such as
``errors``, ``pointer``, ``line``, ``col``) so callers can branch on ``type`` or show
``detail`` to a user. Errors that happen on this side of the wire (a connection that never
came up, a job that failed while we waited, a bad webhook signature) live in the same tree
with ``status`` ``None``.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import httpx

_STANDARD_MEMBERS = ("type", "title", "status", "detail", "instance")


class VihubError(Exception):
    """Base of every error this package raises on purpose."""

    def __init__(
        self,
        title: str,
        *,
        type: str = "about:blank",  # noqa: A002 - the RFC 9457 member name
        status: int | None = None,
        detail: str | None = None,
        instance: str | None = None,
        extra: dict[str, Any] | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.instance = instance
        self.extra: dict[str, Any] = dict(extra or {})
        self.response = response
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{self.status} {self.title}" if self.status else self.title
        return f"{head}: {self.detail}" if self.detail and self.detail != self.title else head

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Per-field errors (``[{"pointer": "/inference/steps", "detail": ...}]``), if any."""
        value = self.extra.get("errors")
        return list(value) if isinstance(value, list) else []

    @property
    def slug(self) -> str:
        """The last path segment of ``type`` (``"job-not-found"``), stable across releases."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    def __getattr__(self, name: str) -> Any:
        # Extension members read as attributes: ``err.line``, ``err.pointer``.
        extra = self.__dict__.get("extra") or {}
        if name in extra:
            return extra[name]
        raise AttributeError(name)

    def to_problem(self) -> dict[str, Any]:
        """The problem+json document this error was built from (or would be)."""
        body: dict[str, Any] = {"type": self.type, "title": self.title}
        if self.status is not None:
            body["status"] = self.status
        if self.detail is not None:
            body["detail"] = self.detail
        if self.instance is not None:
            body["instance"] = self.instance
        body.update(self.extra)
        return body

    @classmethod
    def from_problem(cls, problem: dict[str, Any], *, response: httpx.Response | None = None) -> VihubError:
        status = problem.get("status")
        status = int(status) if isinstance(status, (int, float, str)) and str(status).isdigit() else None
        target = _CLASS_BY_STATUS.get(status or 0) or (ServerError if status and status >= 500 else cls)
        if cls is not VihubError and issubclass(cls, VihubError):
            target = cls
        extra = {k: v for k, v in problem.items() if k not in _STANDARD_MEMBERS}
        return target(
            str(problem.get("title") or _DEFAULT_TITLES.get(status or 0, "Error")),
            type=str(problem.get("type") or "about:blank"),
            status=status,
            detail=problem.get("detail") if isinstance(problem.get("detail"), str) else None,
            instance=problem.get("instance") if isinstance(problem.get("instance"), str) else None,
            extra=extra,
            response=response,
        )


class InvalidRequest(VihubError):
    """The request itself is wrong (400, 406, 413, 415, 422): bad fields, a model outside the
    language, data that does not bind. Fix the request; retrying will not help."""


class Unauthorized(VihubError):
    """401: missing or unknown API key."""


class Forbidden(VihubError):
    """403: the key may not do this (including a per-tenant quota the request breaks)."""


class NotFound(VihubError):
    """404: no such job, dataset or catalog entry (or it belongs to another tenant)."""


class Conflict(VihubError):
    """409: e.g. results not ready yet, a finished job cancelled, an Idempotency-Key reused."""


class RateLimited(VihubError):
    """429 after the client's retries ran out. ``retry_after`` is the server's hint in seconds."""

    @property
    def retry_after(self) -> float | None:
        if self.response is None:
            return None
        return parse_retry_after(self.response.headers.get("retry-after"))


class ServerError(VihubError):
    """5xx after the client's retries ran out."""


class APIConnectionError(VihubError):
    """The server could not be reached (connection refused, DNS, timeouts) after retries."""


class JobFailed(VihubError):
    """Raised by ``Job.wait()`` when the job ends ``failed``; ``job.error`` has the problem."""

    def __init__(self, *args: Any, job: Any = None, **kwargs: Any) -> None:
        self.job = job
        super().__init__(*args, **kwargs)


class JobCancelled(JobFailed):
    """Raised by ``Job.wait()`` when the job ends ``cancelled``."""


class WaitTimeout(VihubError, TimeoutError):
    """``Job.wait(timeout=...)`` ran out; the job keeps running on the server."""

    def __init__(self, *args: Any, job: Any = None, **kwargs: Any) -> None:
        self.job = job
        super().__init__(*args, **kwargs)


class WebhookVerificationError(VihubError):
    """A webhook request whose signature, headers or timestamp do not check out."""


_CLASS_BY_STATUS: dict[int, type[VihubError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    406: InvalidRequest,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
}

_DEFAULT_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    406: "Not acceptable",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def error_from_response(response: httpx.Response) -> VihubError:
    """The typed error for a non-2xx response (problem+json or, failing that, plain text)."""
    problem: dict[str, Any] | None = None
    try:
        parsed = json.loads(response.content or b"null")
        if isinstance(parsed, dict):
            problem = parsed
    except (ValueError, UnicodeDecodeError):
        problem = None
    if problem is None or not problem.get("title"):
        text = response.text.strip() if response.content else ""
        problem = {
            **(problem or {}),
            "title": _DEFAULT_TITLES.get(response.status_code, response.reason_phrase or "Error"),
            "detail": (problem or {}).get("detail") or (text[:500] or None),
        }
    problem["status"] = response.status_code  # the status line wins over the body
    return VihubError.from_problem(problem, response=response)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())
