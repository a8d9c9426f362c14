"""The API's one error hierarchy and the handlers that render RFC 9457 problem+json.

Every error a client can see leaves through here with a stable ``type`` URI
(``https://vihub.dev/problems/<slug>``), a ``status``, a human ``title``/``detail`` and,
where it helps, a pointer to the offending field (``errors: [{pointer, detail}]``) or
source line (``line``, ``col``, ``pointer: "/model/source"``).

Errors from the inference library (``InferenceError`` and its ``ModelLanguageError``)
become 422 problems whose slug is the library's ``kind``. Anything unexpected becomes a
500 problem that names nothing internal; the traceback goes to the log only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.problems import PROBLEM_MEDIA_TYPE, problem_type, safe_text, status_title, title_from_slug

log = logging.getLogger("vihub.api")


# ---------------------------------------------------------------------------------------
# Response models (also used in every route's ``responses=`` declaration)


class ProblemFieldError(BaseModel):
    pointer: str | None = Field(None, description="JSON pointer into the request body")
    parameter: str | None = Field(None, description="query, path or header parameter name")
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details. Extension members depend on ``type``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[problem_type("not-found")])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemFieldError] | None = None
    pointer: str | None = Field(None, description="JSON pointer to the offending member")
    line: int | None = Field(None, description="1-based source line (language errors)")
    col: int | None = Field(None, description="1-based source column (language errors)")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` mapping of a route: each listed status returns a Problem."""
    return {
        status: {
            "model": Problem,
            "description": status_title(status),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


# ---------------------------------------------------------------------------------------
# The hierarchy


class VihubError(Exception):
    """Base of every error the API raises on purpose.

    Subclasses set ``status``, ``slug`` and ``title``; instances carry a ``detail`` and
    optional extension members (``extra``) and response headers.
    """

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers or {}
        self.extra = {k: v for k, v in extra.items() if v is not None}

    @property
    def type(self) -> str:
        return problem_type(self.slug)

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class MalformedRequest(VihubError):
    status, slug, title = 400, "malformed-request", "Malformed request"


class UnknownQueryParameter(MalformedRequest):
    slug, title = "unknown-query-parameter", "Unknown query parameter"


class InvalidPageToken(VihubError):
    status, slug, title = 400, "invalid-page-token", "Invalid page token"


class Unauthorized(VihubError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="vihub"'}, **extra)


class Forbidden(VihubError):
    status, slug, title = 403, "forbidden", "Forbidden"


class QuotaExceeded(VihubError):
    """A per-tenant limit that the request itself breaks (steps, run time, dataset bytes)."""

    status, slug, title = 403, "quota-exceeded", "Quota exceeded"


class TooManyConcurrentJobs(VihubError):
    """The tenant already has its allowed number of unfinished jobs; retry later."""

    status, slug, title = 429, "too-many-concurrent-jobs", "Too many concurrent jobs"


class TooManyTrialRuns(VihubError):
    """The tenant's share of the API's trial-run (dry run / predict) slots is in use."""

    status, slug, title = 429, "too-many-trial-runs", "Too many trial runs in flight"


class NotFound(VihubError):
    status, slug, title = 404, "not-found", "Not found"


class JobNotFound(NotFound):
    slug, title = "job-not-found", "Job not found"


class DatasetNotFound(NotFound):
    slug, title = "dataset-not-found", "Dataset not found"


class CatalogEntryNotFound(NotFound):
    slug, title = "catalog-entry-not-found", "Catalog model not found"


class MethodNotAllowed(VihubError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class NotAcceptable(VihubError):
    status, slug, title = 406, "not-acceptable", "Format not available"


class Conflict(VihubError):
    status, slug, title = 409, "conflict", "Conflict"


class IdempotencyKeyReused(Conflict):
    slug, title = "idempotency-key-reused", "Idempotency-Key reused with a different body"


class ResultsNotReady(Conflict):
    slug, title = "results-not-ready", "Results not ready"


class JobNotCancellable(Conflict):
    slug, title = "job-already-finished", "Job already finished"


class PayloadTooLarge(VihubError):
    status, slug, title = 413, "payload-too-large", "Content too large"


class UnsupportedMediaType(VihubError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(VihubError):
    status, slug, title = 422, "validation-error", "Request failed validation"


class InvalidData(Unprocessable):
    slug, title = "invalid-data", "Invalid data"


class UnknownCatalogModel(Unprocessable):
    slug, title = "unknown-catalog-model", "Unknown catalog model"


class DryRunTimeout(Unprocessable):
    slug, title = "dry-run-timeout", "The model did not finish a trial run in time"


class ServiceUnavailable(VihubError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def inference_problem(error: dict[str, Any], *, source_pointer: str = "/model/source") -> VihubError:
    """A 422 VihubError from an ``InferenceError.to_dict()`` (possibly sent across processes).

    Language errors carry ``line``/``col``; they point at the model (or guide) source.
    """
    kind = str(error.get("kind") or "inference-error")
    message = str(error.get("message") or kind)
    extra = {k: v for k, v in error.items() if k not in ("kind", "message") and _jsonable(v)}
    if extra.get("line") is not None and "pointer" not in extra:
        extra["pointer"] = error.get("pointer") or source_pointer
    elif isinstance(extra.get("field"), str) and "pointer" not in extra:
        # SpecError names a dotted path into the job spec.
        extra["pointer"] = "/" + "/".join(extra["field"].split("."))
    exc = Unprocessable(message, **extra)
    exc.slug = kind
    exc.title = title_from_slug(kind)
    return exc


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, dict, type(None)))


# ---------------------------------------------------------------------------------------
# Rendering


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(safe_text(body), status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def loc_to_pointer(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str | None]:
    """Pydantic ``loc`` to (where, JSON pointer or parameter name).

    ``("body", "inference", "steps")`` -> ``("body", "/inference/steps")``;
    ``("query", "limit")`` -> ``("query", "limit")``. Tagged-union tags that pydantic
    inserts (``function-after[...]``, ``tagged-union[...]``) are not body members and are
    dropped.
    """
    if not loc:
        return "body", ""
    where, *rest = loc
    if where != "body":
        return str(where), ".".join(str(p) for p in rest) or None
    parts = []
    for p in rest:
        s = str(p)
        if "[" in s and "]" in s:
            continue
        parts.append(s.replace("~", "~0").replace("/", "~1"))
    return "body", "/" + "/".join(parts) if parts else ""


async def _vihub_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VihubError)
    return problem_response(exc.to_problem(request.url.path), exc.headers)


async def _inference_error_handler(request: Request, exc: Exception) -> JSONResponse:
    to_dict = getattr(exc, "to_dict", None)
    error = to_dict() if callable(to_dict) else {"kind": getattr(exc, "kind", "inference-error"), "message": str(exc)}
    for attr in ("line", "col"):
        if error.get(attr) is None and getattr(exc, attr, None) is not None:
            error[attr] = getattr(exc, attr)
    return await _vihub_error_handler(request, inference_problem(error))


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        first = errors[0]
        position = first.get("loc", ("body", None))[-1]
        reason = (first.get("ctx") or {}).get("error", "invalid JSON")
        problem = MalformedRequest(f"The body is not valid JSON: {reason} at character {position}.")
        return await _vihub_error_handler(request, problem)
    items = []
    for e in errors:
        where, pointer = loc_to_pointer(tuple(e.get("loc", ())))
        item: dict[str, Any] = {"detail": _error_message(e)}
        if where == "body":
            item["pointer"] = pointer
        else:
            item["parameter"] = pointer
            item["in"] = where
        items.append(item)
    detail = "; ".join(
        f"{i.get('pointer') or i.get('parameter') or '(body)'}: {i['detail']}" for i in items[:5]
    )
    return await _vihub_error_handler(request, Unprocessable(detail, errors=items))


def _error_message(error: dict[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    if error.get("type") == "missing":
        return "field required"
    return str(error.get("msg", "invalid value"))


_HTTP_ERRORS: dict[int, type[VihubError]] = {
    400: MalformedRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    503: ServiceUnavailable,
}


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cls = _HTTP_ERRORS.get(exc.status_code)
    if cls is None:
        problem = VihubError(str(exc.detail) if exc.detail else None)
        problem.status, problem.slug = exc.status_code, f"http-{exc.status_code}"
        problem.title = status_title(exc.status_code)
    else:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}."
        problem = cls(detail)
    problem.headers = dict(exc.headers or {}) | problem.headers
    return await _vihub_error_handler(request, problem)


async def _database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    # The database is down, restarting, or its pool is exhausted: a retryable 503, not a
    # 500 (clients and the SDK retry 503 after Retry-After; /readyz reports the outage).
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    problem = ServiceUnavailable("The database is unavailable; retry shortly.", headers={"Retry-After": "5"})
    return await _vihub_error_handler(request, problem)


async def _unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    # The client learns nothing internal; the log gets the traceback.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(VihubError("An unexpected error occurred; it has been logged.").to_problem(request.url.path))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VihubError, _vihub_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    # ModelLanguageError is an InferenceError. (Importing inference.errors only: the
    # language package pulls in torch, which the API process does not need to start.)
    from inference.errors import InferenceError

    app.add_exception_handler(InferenceError, _inference_error_handler)
    from sqlalchemy import exc as sa_exc

    for db_error in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                     sa_exc.DisconnectionError):
        app.add_exception_handler(db_error, _database_unavailable_handler)
    app.add_exception_handler(Exception, _unhandled_error_handler)
