"""Errors of the model language.

Every rejection of user source or data -- at compile time, at bind time or while the
program runs -- is a ``ModelLanguageError`` (or a subclass) carrying the 1-based
``line``, the 1-based ``col`` (as editors count) (both ``None`` where no position applies) and a stable
``kind`` slug that the API turns into a problem+json ``type``.
"""

from __future__ import annotations

from typing import Any

from inference.errors import InferenceError


class ModelLanguageError(InferenceError):
    """Base class of all model-language errors (kind ``model-language``)."""

    kind = "model-language"

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        col: int | None = None,
        kind: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        if kind is not None:
            self.kind = kind
        self.reason = message
        self.line = line
        self.col = col

    def locate(self, line: int | None, col: int | None) -> ModelLanguageError:
        """Fill in the position if it is not known yet (errors raised by guards)."""
        if self.line is None and line is not None:
            self.line = line
            self.col = col
        return self

    @property
    def message(self) -> str:  # type: ignore[override]
        if self.line is None:
            return self.reason
        if self.col is None:
            return f"line {self.line}: {self.reason}"
        return f"line {self.line}, col {self.col}: {self.reason}"

    @message.setter
    def message(self, value: str) -> None:
        # InferenceError.__init__ assigns ``message``; the positioned form is derived.
        self.reason = value

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "line": self.line,
            "col": self.col,
            **self.details,
        }


class ModelSyntaxError(ModelLanguageError):
    """The source is not valid Python (or not text at all)."""

    kind = "syntax-error"


class ForbiddenConstruct(ModelLanguageError):
    """A construct outside the whitelisted subset (``while``, imports, dunders, ...)."""

    kind = "forbidden-construct"


class UnknownName(ModelLanguageError):
    """A name or attribute that the language does not provide."""

    kind = "unknown-name"


class LimitExceeded(ModelLanguageError):
    """A resource limit of :class:`~inference.language.limits.Limits` was exceeded."""

    kind = "limit-exceeded"

    def __init__(
        self, message: str, *, limit: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit
        if limit is not None:
            self.details["limit"] = limit


class DataBindingError(ModelLanguageError):
    """The dataset does not fit the entry function's parameters."""

    kind = "data-binding"


class ModelRuntimeError(ModelLanguageError):
    """An exception raised by torch/pyro (or an ``assert``) while user code ran."""

    kind = "runtime-error"
