"""Posterior predictive checks: the observed values of a model's observed sites.

``observed_values(spec, data)`` compiles the model, binds the data and traces the model
once (latents drawn from the prior; only the observed sites' values are kept): the data
as the model sees it, per observed *site* (``obs``), not per data field (``y``), so that
it lines up with ``FitResult.predictive``. Runs inside ``isolated`` like ``fit``.

``observed_npz`` is the same as npz bytes (the worker stores it beside the predictive
draws; the API computes the PPC statistics from the two, ``api.compare.ppc``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pyro import poutine

from inference.engine.global_state import isolated, seed_all
from inference.language import Limits
from inference.spec import JobSpec

__all__ = ["observed_values", "observed_npz"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def observed_values(spec: JobSpec | Mapping[str, Any], data: Mapping[str, Any] | None,
                    *, limits: Limits | None = None) -> dict[str, np.ndarray]:
    from inference.fitting import prepare

    spec = spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)
    with isolated(seed=spec.inference.seed, float_dtype=_DTYPES[spec.inference.float_dtype]):
        job = prepare(spec, data, device=torch.device("cpu"), limits=limits)
        seed_all(spec.inference.seed)
        with torch.no_grad(), poutine.block():
            trace = poutine.trace(job.model).get_trace(**job.kwargs)
        return {name: site["value"].detach().cpu().numpy().copy()
                for name, site in trace.nodes.items()
                if site["type"] == "sample" and site.get("is_observed") and torch.is_tensor(site["value"])}


def observed_npz(spec: JobSpec | Mapping[str, Any], data: Mapping[str, Any] | None,
                 *, limits: Limits | None = None) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **observed_values(spec, data, limits=limits))
    return buffer.getvalue()
