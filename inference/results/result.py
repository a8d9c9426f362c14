"""``FitResult``: everything a fit returns, with its JSON and binary forms.

The forms themselves (the JSON layout, npz, safetensors, netCDF) are defined once in
:mod:`inference.results.formats`, which the worker and the API use too; these methods
are the object-shaped way in. ``param_store_pt`` (Pyro's own pickle format) is produced
only, never read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from . import formats
from .formats import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "FitResult"]


@dataclass
class FitResult:
    """The outcome of ``inference.fit``.

    * ``guide_params`` / ``model_params``: name -> ``{"value" (constrained, nested list),
      "shape", "dtype", "constraint"}`` for phi (guide) and theta (model).
    * ``loss``: one float per step. ``elbo_terms``: ``[{"step", "elbo",
      "reconstruction": {site: float}, "kl": {site: float}}]`` every k steps.
      ``grad_norms``: ``[{"step", "norms": {param: float}}]``.
    * ``samples``: site -> array, draws first (latent + deterministic sites);
      ``predictive``: observed site -> array (empty unless requested).
    * ``summary``: site -> ``{"mean", "sd", "q05", "q50", "q95"}``.
    * ``log_probs``: the dict of :func:`inference.results.trace_log_probs`.
    * ``diagnostics``: ``k_hat``, ``k_hat_reading``, ``warnings``, ``converged``,
      ``nan_events``, ``validation`` (and whatever else the engine adds).
    * ``param_store_state``: the param store as safetensors bytes
      (:func:`inference.results.param_store_safetensors`).
    * ``meta``: versions, device, seed, settings, wall time, steps done.
    """

    guide_params: dict[str, dict] = field(default_factory=dict)
    model_params: dict[str, dict] = field(default_factory=dict)
    loss: list[float] = field(default_factory=list)
    elbo_terms: list[dict] = field(default_factory=list)
    grad_norms: list[dict] = field(default_factory=list)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    predictive: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, dict] = field(default_factory=dict)
    log_probs: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(
        default_factory=lambda: {
            "k_hat": None,
            "k_hat_reading": "unknown",
            "warnings": [],
            "converged": None,
            "nan_events": [],
            "validation": None,
        }
    )
    param_store_state: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """A strict-JSON dict of the whole result (big arrays included); the layout is
        described in :mod:`inference.results.formats`."""
        out = {f.name: formats.jsonable(getattr(self, f.name)) for f in fields(self)}
        out["schema_version"] = SCHEMA_VERSION
        out["dtypes"] = formats.result_dtypes(self.samples, self.predictive, self.log_probs)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FitResult:
        """Inverse of :meth:`to_json` (``null`` in float arrays comes back as nan)."""
        samples, predictive = formats.read_samples(data)
        log_probs = formats.read_log_probs(data)
        return cls(
            guide_params=dict(data.get("guide_params", {})),
            model_params=dict(data.get("model_params", {})),
            loss=[float("nan") if v is None else float(v) for v in data.get("loss", [])],
            elbo_terms=list(data.get("elbo_terms", [])),
            grad_norms=list(data.get("grad_norms", [])),
            samples=samples,
            predictive=predictive,
            summary=dict(data.get("summary", {})),
            log_probs=log_probs,
            diagnostics=dict(data.get("diagnostics", {})),
            param_store_state=formats.blob_from_json(data.get("param_store_state")),
            meta=dict(data.get("meta", {})),
        )

    # ------------------------------------------------------------ binary forms

    def samples_npz(self, *, include_predictive: bool = True) -> bytes:
        """``np.load``-able npz of the posterior samples (and predictive ones, prefixed
        ``predictive/`` so a site name can never collide)."""
        return formats.encode_npz(formats.samples_arrays(self.samples, self.predictive if include_predictive else None))

    def log_probs_npz(self) -> bytes:
        """npz of the trace log-probs: ``log_joint``, ``log_q``, ``log_weight`` and
        ``model_sites/<site>``, ``guide_sites/<site>``, ``pointwise/<site>``."""
        return formats.encode_npz(formats.log_probs_arrays(self.log_probs))

    def params_safetensors(self) -> bytes:
        """Constrained values of every param; metadata holds the constraints and the
        phi/theta split (``vihub.guide_params`` / ``vihub.model_params``)."""
        return formats.params_safetensors(self.guide_params, self.model_params)

    def param_store_pt(self) -> bytes:
        """Pyro's native param-store file, for ``pyro.get_param_store().load(path)``.

        Built from ``param_store_state`` (safetensors); a torch pickle, so it is only
        produced for the user's own download, never read back by vihub.
        """
        from .params import load_param_store_safetensors, param_store_pt

        return param_store_pt(load_param_store_safetensors(self.param_store_state))

    def to_netcdf(self) -> bytes:
        """ArviZ InferenceData as netCDF4 bytes (:func:`formats.inference_data_netcdf`)."""
        return formats.inference_data_netcdf(self.samples, self.predictive, self.log_probs,
                                             diagnostics=self.diagnostics, meta=self.meta)
