"""Optimizers and learning-rate schedulers from the spec, as ``pyro.optim`` wrappers.

Pyro creates one torch optimizer per parameter, lazily, so gradient clipping is
Pyro's per-parameter ``clip_args`` (``clip_grad_norm`` clips each parameter's gradient
norm). A scheduler wraps the optimizer (``pyro.optim.ExponentialLR`` ...) and the run
loop calls :func:`step_scheduler` every ``every_steps`` steps.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import pyro.optim
from pyro.optim.clipped_adam import ClippedAdam as TorchClippedAdam
from pyro.optim.lr_scheduler import PyroLRScheduler

from inference.engine.errors import SpecError
from inference.spec import OptimizerSpec, SchedulerSpec

__all__ = ["build_optimizer", "step_scheduler", "allowed_optimizer_options", "optim_args", "TORCH_OPTIMIZERS"]

TORCH_OPTIMIZERS: dict[str, type] = {
    "Adam": torch.optim.Adam,
    "ClippedAdam": TorchClippedAdam,
    "AdamW": torch.optim.AdamW,
    "SGD": torch.optim.SGD,
    "RMSprop": torch.optim.RMSprop,
    "Adagrad": torch.optim.Adagrad,
    "Adadelta": torch.optim.Adadelta,
    "Adamax": torch.optim.Adamax,
    "NAdam": torch.optim.NAdam,
    "RAdam": torch.optim.RAdam,
}
# Constructor options that make no sense for a hosted job (or are not JSON).
_EXCLUDED = {"self", "params", "foreach", "fused", "capturable", "differentiable", "maximize"}
_FIELDS = ("betas", "eps", "weight_decay", "momentum", "clip_norm", "lrd")


def allowed_optimizer_options(name: str) -> list[str]:
    params = inspect.signature(TORCH_OPTIMIZERS[name].__init__).parameters
    return [p for p in params if p not in _EXCLUDED]


def optim_args(spec: OptimizerSpec) -> dict[str, Any]:
    allowed = allowed_optimizer_options(spec.name)
    args: dict[str, Any] = {"lr": spec.lr}
    for field in _FIELDS:
        value = getattr(spec, field)
        if value is None:
            continue
        if field not in allowed:
            raise SpecError(
                f"optimizer {spec.name} has no option {field!r}; allowed: {allowed}",
                field=f"inference.optimizer.{field}",
            )
        args[field] = tuple(value) if field == "betas" else value
    for key, value in spec.options.items():
        if key not in allowed or key == "lr":
            raise SpecError(
                f"optimizer {spec.name} has no option {key!r}"
                + ("; set lr directly" if key == "lr" else f"; allowed: {allowed}"),
                field=f"inference.optimizer.options.{key}",
            )
        args[key] = tuple(value) if isinstance(value, list) else value
    return args


def _scheduler(spec: SchedulerSpec, total_steps: int) -> tuple[type, dict[str, Any]]:
    if spec.name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR, {"gamma": spec.gamma}
    if spec.name == "step":
        return torch.optim.lr_scheduler.StepLR, {
            "step_size": spec.step_size,
            "gamma": 0.1 if spec.gamma is None else spec.gamma,
        }
    if spec.name == "cosine":
        t_max = spec.t_max or max(1, total_steps // spec.every_steps)
        return torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": t_max, "eta_min": spec.eta_min}
    return torch.optim.lr_scheduler.ReduceLROnPlateau, {
        "factor": spec.factor,
        "patience": spec.patience,
        "threshold": spec.threshold,
        "min_lr": spec.min_lr,
    }


def build_optimizer(
    spec: OptimizerSpec,
    *,
    clip_grad_norm: float | None = None,
    scheduler: SchedulerSpec | None = None,
    total_steps: int = 1000,
) -> pyro.optim.PyroOptim:
    """A ``PyroOptim`` (or ``PyroLRScheduler`` when ``scheduler`` is given)."""
    args = optim_args(spec)
    clip_args = {"clip_norm": clip_grad_norm} if clip_grad_norm is not None else None
    torch_cls = TORCH_OPTIMIZERS[spec.name]
    if scheduler is None:
        return pyro.optim.PyroOptim(torch_cls, args, clip_args)
    sched_cls, sched_args = _scheduler(scheduler, total_steps)
    return PyroLRScheduler(
        sched_cls, {"optimizer": torch_cls, "optim_args": args, **sched_args}, clip_args
    )


def step_scheduler(optim: pyro.optim.PyroOptim, spec: SchedulerSpec, mean_loss: float) -> None:
    """Advance every per-parameter scheduler once (plateau is fed ``mean_loss``)."""
    if not isinstance(optim, PyroLRScheduler):
        return
    if spec.name == "reduce_on_plateau":
        optim.step(mean_loss)
    else:
        optim.step()
