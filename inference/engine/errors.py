"""Errors the SVI engine raises on purpose (all ``InferenceError``, each with a stable ``kind``)."""

from __future__ import annotations

from typing import Any

from inference.errors import InferenceError

__all__ = ["SpecError", "ValidationFailed", "NonFiniteLoss", "FitCancelled", "FitFailed"]


class SpecError(InferenceError):
    """The spec asks for something the engine cannot build (unknown option, bad combination).

    ``field`` is a dotted path into the job spec, e.g. ``guide.options.init_scale``.
    """

    kind = "spec-error"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


class ValidationFailed(InferenceError):
    """The validation pass found fatal problems; ``report`` holds them all."""

    kind = "validation-failed"

    def __init__(self, report: Any) -> None:
        lines = "; ".join(m.message for m in report.errors) or "validation failed"
        super().__init__(lines, report=report.to_dict())
        self.report = report


class NonFiniteLoss(InferenceError):
    """The loss or a gradient became NaN/inf at ``step``; ``params``/``sites`` name the culprits."""

    kind = "non-finite-loss"

    def __init__(self, message: str, *, step: int, params: list[str], sites: list[str]) -> None:
        super().__init__(message, step=step, params=params, sites=sites)
        self.step, self.params, self.sites = step, params, sites


class FitCancelled(InferenceError):
    """``should_cancel()`` returned true; the fit stopped at ``step``."""

    kind = "fit-cancelled"

    def __init__(self, step: int) -> None:
        super().__init__(f"fit cancelled at step {step}", step=step)
        self.step = step


class FitFailed(InferenceError):
    """The model or guide code failed during training or result assembly (``cause`` is the
    original exception type); the message carries Pyro's/torch's own words."""

    kind = "fit-failed"
