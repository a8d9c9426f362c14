"""The SVI engine: guides, ELBOs, optimizers, the validation pass and the run loop.

Everything here works on Pyro callables (model and guide taking the data as keyword
arguments); ``inference.fit`` turns a job spec into those and assembles the result.
"""

from inference.engine.errors import FitCancelled, FitFailed, NonFiniteLoss, SpecError, ValidationFailed
from inference.engine.loop import FitCallbacks, Progress, SVIRun, run_svi
from inference.engine.validation import ValidationMessage, ValidationReport, run_validation

__all__ = [
    "FitCallbacks",
    "FitCancelled",
    "FitFailed",
    "NonFiniteLoss",
    "Progress",
    "SVIRun",
    "SpecError",
    "ValidationFailed",
    "ValidationMessage",
    "ValidationReport",
    "run_svi",
    "run_validation",
]
