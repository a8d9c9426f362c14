"""problem+json (RFC 9457) documents stored in ``jobs.error``.

``type`` is ``https://vihub.dev/problems/<kind>`` with the same slugs the API uses for
HTTP errors, so a failed job's error and a 4xx response read alike.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://vihub.dev/problems/"

# Job-level error kinds raised outside the engine.
INTERNAL_ERROR = "internal-error"
TOO_MANY_ATTEMPTS = "too-many-attempts"
TIME_LIMIT = "time-limit-exceeded"
# An OS limit of the process running user code (memory, CPU time, wall clock).
RESOURCE_LIMIT = "resource-limit"
DATA_MISSING = "data-missing"


def problem(kind: str, title: str, detail: str | None = None, status: int = 422, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": PROBLEM_BASE + kind, "title": title, "status": status}
    if detail:
        doc["detail"] = detail
    doc.update({k: v for k, v in extra.items() if v is not None})
    return storable(doc)


def storable(value: Any) -> Any:
    """``value`` with every string safe for a JSON column and for UTF-8 output.

    Problem texts quote user code and data (an assert message, a site name): a NUL byte
    is refused by Postgres text/JSONB and a lone surrogate cannot be encoded as UTF-8,
    and either would make the job's final write fail. Both are shown escaped instead.
    """
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\\x00")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def _title(kind: str) -> str:
    return kind.replace("-", " ").capitalize()


def from_inference_error(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A problem document from ``InferenceError.kind`` and ``.to_dict()``."""
    extra = {k: v for k, v in payload.items() if k not in ("kind", "message")}
    return problem(kind, _title(kind), payload.get("message"), status=422, **extra)
