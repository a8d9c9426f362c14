"""``FitResult``: everything a fit returns, with its JSON and binary forms.

JSON (``to_json``) is strict JSON: arrays become nested lists, non-finite floats become
``null`` (Postgres ``jsonb`` and most JSON parsers reject NaN/Infinity), bytes become
base64. The dtypes of array fields are recorded so ``from_json`` restores them.
Binary forms: ``samples_npz`` / ``log_probs_npz`` (numpy), ``params_safetensors``
(constrained values), ``param_store_pt`` (Pyro's own pickle format, produced only),
``to_netcdf`` (ArviZ InferenceData; arviz/xarray are imported only there).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
_ARRAY_LOG_PROB_KEYS = ("log_joint", "log_q", "log_weight", "log_p_discrete_given_rest")
_DICT_LOG_PROB_KEYS = ("model_sites", "guide_sites", "pointwise", "draws")


def _jsonable(x: Any) -> Any:
    """Strict-JSON form of nested numpy / torch / python values (non-finite -> None)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(x)).decode("ascii")}
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "f":
            return _jsonable(x.tolist())
        return x.tolist()
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _array(value: Any, dtype: str | None) -> np.ndarray:
    if dtype is not None and np.dtype(dtype).kind == "f":
        arr = np.array(value, dtype=object)
        arr = np.where(arr == None, np.nan, arr)
        return arr.astype(dtype)
    return np.asarray(value, dtype=dtype)


def _dtypes(arrays: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(np.asarray(v).dtype) for k, v in arrays.items()}


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
      ``validation`` (and whatever else the engine adds; a non-finite loss fails the fit
      with ``NonFiniteLoss`` instead of being listed).
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
            "validation": None,
        }
    )
    param_store_state: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """A strict-JSON dict of the whole result (big arrays included)."""
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}
        out["schema_version"] = SCHEMA_VERSION
        out["dtypes"] = {
            "samples": _dtypes(self.samples),
            "predictive": _dtypes(self.predictive),
            "log_probs": {
                **{k: str(np.asarray(self.log_probs[k]).dtype) for k in _ARRAY_LOG_PROB_KEYS if k in self.log_probs},
                **{k: _dtypes(self.log_probs[k]) for k in _DICT_LOG_PROB_KEYS if k in self.log_probs},
            },
        }
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FitResult:
        """Inverse of :meth:`to_json` (``null`` in float arrays comes back as nan)."""
        dtypes = data.get("dtypes", {})
        samples = {k: _array(v, dtypes.get("samples", {}).get(k)) for k, v in data.get("samples", {}).items()}
        predictive = {
            k: _array(v, dtypes.get("predictive", {}).get(k)) for k, v in data.get("predictive", {}).items()
        }
        lp_types = dtypes.get("log_probs", {})
        log_probs = dict(data.get("log_probs", {}))
        for key in _ARRAY_LOG_PROB_KEYS:
            if key in log_probs:
                log_probs[key] = _array(log_probs[key], lp_types.get(key, "float64"))
        for key in _DICT_LOG_PROB_KEYS:
            if key in log_probs:
                log_probs[key] = {
                    k: _array(v, lp_types.get(key, {}).get(k, "float64")) for k, v in log_probs[key].items()
                }
        state = data.get("param_store_state") or {}
        blob = base64.b64decode(state["base64"]) if isinstance(state, Mapping) and "base64" in state else b""
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
            param_store_state=blob,
            meta=dict(data.get("meta", {})),
        )

    # ------------------------------------------------------------ binary forms

    def samples_npz(self, *, include_predictive: bool = True) -> bytes:
        """``np.load``-able npz of the posterior samples (and predictive ones, prefixed
        ``predictive/`` so a site name can never collide)."""
        arrays = {k: np.asarray(v) for k, v in self.samples.items()}
        if include_predictive:
            arrays.update({f"predictive/{k}": np.asarray(v) for k, v in self.predictive.items()})
        return _npz(arrays)

    def log_probs_npz(self) -> bytes:
        """npz of the trace log-probs: ``log_joint``, ``log_q``, ``log_weight`` and
        ``model_sites/<site>``, ``guide_sites/<site>``, ``pointwise/<site>``."""
        arrays = {}
        for key in _ARRAY_LOG_PROB_KEYS:
            if key in self.log_probs:
                arrays[key] = np.asarray(self.log_probs[key])
        for key in _DICT_LOG_PROB_KEYS:
            for site, value in self.log_probs.get(key, {}).items():
                arrays[f"{key}/{site}"] = np.asarray(value)
        return _npz(arrays)

    def params_safetensors(self) -> bytes:
        """Constrained values of every param; metadata holds the constraints and the
        phi/theta split (``vihub.guide_params`` / ``vihub.model_params``)."""
        from .params import constrained_safetensors

        return constrained_safetensors(self.guide_params, self.model_params)

    def param_store_pt(self) -> bytes:
        """Pyro's native param-store file, for ``pyro.get_param_store().load(path)``.

        Built from ``param_store_state`` (safetensors); a torch pickle, so it is only
        produced for the user's own download, never read back by vihub.
        """
        from .params import load_param_store_safetensors, param_store_pt

        return param_store_pt(load_param_store_safetensors(self.param_store_state))

    def to_netcdf(self) -> bytes:
        """ArviZ InferenceData as netCDF4 (h5netcdf) bytes.

        Groups: ``posterior`` (one chain), ``posterior_predictive`` (when drawn),
        ``log_likelihood`` (pointwise per observed site and draw, for ``az.loo``),
        ``sample_stats`` (``lp`` = log p(x, z), ``log_q``, ``log_weight``). Draw counts
        of the groups need not match (each group has its own ``draw`` coordinate).
        """
        import arviz as az  # lazy: inference must work without arviz/xarray

        def chains(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
            return {k: np.asarray(v)[None, ...] for k, v in arrays.items()}

        groups: dict[str, Any] = {"posterior": chains(self.samples)}
        if self.predictive:
            groups["posterior_predictive"] = chains(self.predictive)
        pointwise = self.log_probs.get("pointwise") or {}
        if pointwise:
            groups["log_likelihood"] = chains(pointwise)
        stats = {
            name: self.log_probs[key]
            for name, key in (("lp", "log_joint"), ("log_q", "log_q"), ("log_weight", "log_weight"))
            if key in self.log_probs
        }
        if stats:
            groups["sample_stats"] = chains(stats)
        attrs = {"vihub_schema_version": SCHEMA_VERSION}
        k_hat = self.diagnostics.get("k_hat")
        if k_hat is not None:
            attrs["pareto_k_hat"] = float(k_hat)
        for key in ("vihub", "pyro", "torch"):
            version = (self.meta.get("versions") or {}).get(key)
            if version:
                attrs[f"{key}_version"] = str(version)
        idata = az.from_dict(**groups, attrs=attrs)
        fd, path = tempfile.mkstemp(suffix=".nc")
        os.close(fd)
        try:
            idata.to_netcdf(path, engine="h5netcdf")
            with open(path, "rb") as fh:
                return fh.read()
        finally:
            os.unlink(path)


def _npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def dumps(result: FitResult) -> str:
    """``json.dumps`` of :meth:`FitResult.to_json`, strict (no NaN tokens)."""
    return json.dumps(result.to_json(), allow_nan=False)
