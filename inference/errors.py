"""The root of inference's error hierarchy.

Every error the library raises on purpose derives from ``InferenceError`` and carries a
stable ``kind`` slug; the API turns ``kind`` into the problem+json ``type``.
"""

from __future__ import annotations

from typing import Any


class InferenceError(Exception):
    """Base class. ``kind`` is stable; ``message`` is for people."""

    kind: str = "inference-error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, **self.details}
