"""Problem types (RFC 9457): the one base URI, titles, and the documents stored in ``jobs.error``.

``type`` is ``https://vihub.dev/problems/<slug>`` everywhere: the API's error responses
(``api.errors``) and a failed job's stored error use the same slugs, so the two read
alike. A status without a title of its own is titled by ``http.HTTPStatus``.
"""

from __future__ import annotations

import http
from typing import Any

PROBLEM_BASE = "https://vihub.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Job-level error kinds raised outside the engine.
INTERNAL_ERROR = "internal-error"
TOO_MANY_ATTEMPTS = "too-many-attempts"
TIME_LIMIT = "time-limit-exceeded"
# An OS limit of the process running user code (memory, CPU time, wall clock).
RESOURCE_LIMIT = "resource-limit"
DATA_MISSING = "data-missing"


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def status_title(status: int) -> str:
    """The standard reason phrase of an HTTP status (``404`` -> ``"Not Found"``)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def title_from_slug(slug: str) -> str:
    """A title for a slug that has none of its own (``forbidden-construct`` -> ``Forbidden construct``)."""
    return slug.replace("-", " ").replace("_", " ").capitalize()


def problem(kind: str, title: str, detail: str | None = None, status: int = 422, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": problem_type(kind), "title": title, "status": status}
    if detail:
        doc["detail"] = detail
    doc.update({k: v for k, v in extra.items() if v is not None})
    return safe_text(doc)


def from_inference_error(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A problem document from ``InferenceError.kind`` and ``.to_dict()``."""
    extra = {k: v for k, v in payload.items() if k not in ("kind", "message")}
    return problem(kind, title_from_slug(kind), payload.get("message"), status=422, **extra)


def safe_str(value: str) -> str:
    """``value`` as text that always encodes as UTF-8 and holds no NUL.

    Problem texts quote user code and data (an assert message, a site name, what the
    client sent): a NUL byte is refused by Postgres text/JSONB and a lone surrogate
    cannot be encoded as UTF-8, and either would make a job's final write or a response
    fail. Both are shown escaped instead (``\\x00``, ``\\udxxx``).
    """
    if "\x00" not in value:
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def safe_text(value: Any) -> Any:
    """Every str in a JSON-able value (keys too) through ``safe_str``."""
    if isinstance(value, str):
        return safe_str(value)
    if isinstance(value, dict):
        return {safe_text(k): safe_text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_text(v) for v in value]
    return value
