"""Warm starts: a fit that begins where another one ended.

Two ways in, both used by the service for ``inference.init_from``:

- ``init_params``: the constrained values of a finished job's guide and model params
  (its ``params_safetensors`` artifact, :func:`read_params`). After the fresh guide has
  created its params, :func:`apply_init_params` checks that the names and shapes are
  exactly those of the live param store, naming every mismatch in one ``SpecError``
  (``field="inference.init_from"``), and copies the values in (through the param's own
  constraint). The optimizer starts fresh.
- ``resume_from``: the finished job's *final* checkpoint (params, optimizer state, RNG,
  loss curve; :func:`final_checkpoint`, written by ``fit`` through
  ``FitCallbacks.on_final_checkpoint``). The run loop resumes it exactly as it resumes a
  crashed attempt, so fitting N steps and continuing for M more is the same computation
  as one fit of N + M steps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyro
import torch
from torch.distributions import transform_to

from inference.engine.checkpoint import dump_checkpoint
from inference.engine.errors import SpecError

__all__ = ["read_params", "apply_init_params", "final_checkpoint", "FIELD"]

FIELD = "inference.init_from"
_FORMAT = "vihub-params/constrained/v1"


def read_params(blob: bytes) -> dict[str, torch.Tensor]:
    """Constrained values by param-store name from ``FitResult.params_safetensors()`` bytes."""
    from safetensors.torch import load

    try:
        header_len = int.from_bytes(blob[:8], "little")
        metadata = json.loads(blob[8 : 8 + header_len]).get("__metadata__") or {}
        tensors = load(blob)
    except Exception as e:  # noqa: BLE001 - a damaged artifact is the spec's problem, named
        raise SpecError(f"the params of the init_from job cannot be read ({type(e).__name__})",
                        field=FIELD) from e
    if metadata.get("vihub.format") != _FORMAT:
        raise SpecError("the init_from params are not a vihub params file", field=FIELD)
    return dict(tensors)


def apply_init_params(values: Mapping[str, torch.Tensor]) -> None:
    """Set the live param store to ``values`` (constrained), after checking the structure.

    Every param of the store must be given, with the same shape, and nothing else: a
    warm start from another model or guide is refused, not half-applied.
    """
    store = pyro.get_param_store()
    live = dict(store.named_parameters())
    missing = sorted(set(live) - set(values))
    unexpected = sorted(set(values) - set(live))
    shapes = [f"{name}: {tuple(values[name].shape)} in the init_from job, {tuple(live[name].shape)} here"
              for name in sorted(set(live) & set(values))
              if tuple(values[name].shape) != tuple(store[name].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"params of this model/guide that the init_from job does not have: {missing}")
        if unexpected:
            parts.append(f"params of the init_from job that this model/guide does not have: {unexpected}")
        if shapes:
            parts.append(f"params with other shapes: {shapes}")
        raise SpecError("inference.init_from: the job's params do not fit this model and guide; "
                        + "; ".join(parts), field=FIELD, missing=missing, unexpected=unexpected,
                        shapes=shapes)
    with torch.no_grad():
        for name, unconstrained in live.items():
            constraint = store._constraints[name]  # noqa: SLF001 - the store keeps no public map
            value = values[name].to(unconstrained.device, unconstrained.dtype)
            unconstrained.copy_(transform_to(constraint).inv(value))


def final_checkpoint(run: Any, fingerprint: Mapping[str, Any]) -> bytes:
    """The checkpoint of a finished run (``SVIRun``), taken while its params are still in
    the param store and before anything else draws from the RNGs."""
    return dump_checkpoint(step=run.steps_done, losses=list(run.losses), optim=run.optim,
                           history={"hooks": run.history, "grad_norms": run.grad_norms},
                           fingerprint=dict(fingerprint))
