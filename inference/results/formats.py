"""Result formats: the one module that writes and reads a fit's results, torch-free.

``FitResult`` (its JSON and binary forms), the worker (the artifacts it stores) and the API
(downloads, and binary forms built from the stored JSON) all go through these functions,
so a download is the same bytes whoever encoded it. Importing this module loads numpy
only (``inference.results`` resolves its other names lazily); safetensors, xarray/arviz
(netCDF) and torch (``pt``) are imported inside the encoders that need them, so the API
process, which never loads torch, can use it.

The JSON layout (``FitResult.to_json``, ``schema_version`` 1)
-------------------------------------------------------------
Strict JSON: arrays are nested lists, non-finite floats ``null``, bytes
``{"base64": ...}``. Keys:

- ``guide_params`` / ``model_params``: name -> ``{"value", "shape", "dtype", "constraint"}``;
- ``loss``: one float per step; ``elbo_terms``: ``[{"step", "elbo", "reconstruction":
  {site: float}, "kl": {site: float}}]``; ``grad_norms``: ``[{"step", "norms": {param: float}}]``;
- ``samples`` / ``predictive``: site -> nested list, draws first;
- ``summary``: site -> ``{"mean", "sd", "q05", "q50", "q95"}``;
- ``log_probs``: the arrays ``log_joint``, ``log_q``, ``log_weight``,
  ``log_p_discrete_given_rest`` (:data:`ARRAY_LOG_PROB_KEYS`), the dicts of arrays
  ``model_sites``, ``guide_sites``, ``pointwise``, ``draws`` (:data:`DICT_LOG_PROB_KEYS`),
  plus flags and notes (``point_mass_guide``, ``has_latents``, ``notes``);
- ``diagnostics``, ``meta``: plain JSON objects;
- ``param_store_state``: ``{"base64": <safetensors bytes>}``;
- ``schema_version``; ``dtypes``: ``{"samples": {site: dtype}, "predictive": {...},
  "log_probs": {key: dtype | {site: dtype}}}``, so that :func:`read_samples` and
  :func:`read_log_probs` restore the arrays with their dtypes.

Binary forms (the keys of a flat ``{name: array}`` mapping)
-----------------------------------------------------------
- samples (:func:`samples_arrays`): ``<site>`` and ``predictive/<site>``;
- log-probs (:func:`log_probs_arrays`): the array keys above, and ``<dict key>/<site>``;
- parameters (:func:`params_safetensors`): constrained values by param name, with
  ``vihub.constraints``, ``vihub.roles``, ``vihub.guide_params``, ``vihub.model_params`` in
  the metadata; the flat form (:func:`flatten_arrays`) keys them ``guide_params/<name>``;
- loss (:func:`records_to_columns`): ``<section>/step``, ``<section>/kl/<site>``, ...

Encoders: :func:`encode_npz`, :func:`encode_safetensors`, :func:`encode_pt`,
:func:`encode_netcdf` (one group of flat arrays), :func:`inference_data_netcdf` (ArviZ
InferenceData); readers: :func:`read_npz`, :func:`read_safetensors`, :func:`read_netcdf`.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
ARRAY_LOG_PROB_KEYS = ("log_joint", "log_q", "log_weight", "log_p_discrete_given_rest")
DICT_LOG_PROB_KEYS = ("model_sites", "guide_sites", "pointwise", "draws")
PARAMS_FORMAT = "vihub-params/constrained/v1"
CONSTRAINTS_KEY = "vihub.constraints"


# ---------------------------------------------------------------------------------------
# Values: to numpy, to JSON and back


def to_numpy(value: Any) -> np.ndarray:
    """A numpy array of a torch tensor (on any device), a numpy value or nested lists."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        return value.detach().cpu().numpy()
    return np.asarray(value)


def jsonable(value: Any) -> Any:
    """A strict-JSON copy of nested values: mappings, sequences, numpy / torch arrays and
    scalars, pydantic models, dataclasses and objects with ``to_dict``.

    Non-finite floats become ``None`` (Postgres ``jsonb`` and most parsers reject NaN),
    bytes ``{"base64": ...}``, other objects their text. Complex numbers have no JSON
    form: ``TypeError`` (a result holding one cannot be stored).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    if isinstance(value, complex):
        raise TypeError(f"complex value {value!r} has no JSON form")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iub" or (value.dtype.kind == "f" and np.isfinite(value).all()):
            return value.tolist()  # fast path: nothing to replace
        return jsonable(value.tolist())
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if callable(getattr(value, "to_dict", None)):
        return jsonable(value.to_dict())
    return str(value)


def encode_json(result_json: Mapping[str, Any]) -> bytes:
    """Compact strict-JSON bytes of an already JSON-able mapping (no NaN tokens)."""
    return json.dumps(result_json, allow_nan=False, separators=(",", ":")).encode()


def array_from_json(value: Any, dtype: str | None) -> np.ndarray:
    """Nested lists back to an array; ``null`` in a float array comes back as nan."""
    if dtype is not None and np.dtype(dtype).kind == "f":
        arr = np.array(value, dtype=object)
        arr = np.where(arr == None, np.nan, arr)  # noqa: E711 - elementwise
        return arr.astype(dtype)
    return np.asarray(value, dtype=dtype)


def dtypes_of(arrays: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(to_numpy(v).dtype) for k, v in arrays.items()}


def result_dtypes(samples: Mapping[str, Any], predictive: Mapping[str, Any],
                  log_probs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``dtypes`` block of the JSON layout."""
    return {
        "samples": dtypes_of(samples),
        "predictive": dtypes_of(predictive),
        "log_probs": {
            **{k: str(to_numpy(log_probs[k]).dtype) for k in ARRAY_LOG_PROB_KEYS if k in log_probs},
            **{k: dtypes_of(log_probs[k]) for k in DICT_LOG_PROB_KEYS if k in log_probs},
        },
    }


def read_samples(result_json: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(samples, predictive)`` of a JSON result as arrays, with their recorded dtypes."""
    dtypes = result_json.get("dtypes") or {}
    samples = {k: array_from_json(v, (dtypes.get("samples") or {}).get(k))
               for k, v in (result_json.get("samples") or {}).items()}
    predictive = {k: array_from_json(v, (dtypes.get("predictive") or {}).get(k))
                  for k, v in (result_json.get("predictive") or {}).items()}
    return samples, predictive


def read_log_probs(result_json: Mapping[str, Any]) -> dict[str, Any]:
    """The ``log_probs`` of a JSON result with its arrays restored (recorded dtypes,
    float64 when none was recorded); flags and notes as they are."""
    lp_types = (result_json.get("dtypes") or {}).get("log_probs") or {}
    log_probs = dict(result_json.get("log_probs") or {})
    for key in ARRAY_LOG_PROB_KEYS:
        if key in log_probs:
            log_probs[key] = array_from_json(log_probs[key], lp_types.get(key, "float64"))
    for key in DICT_LOG_PROB_KEYS:
        if key in log_probs:
            log_probs[key] = {k: array_from_json(v, (lp_types.get(key) or {}).get(k, "float64"))
                              for k, v in log_probs[key].items()}
    return log_probs


def blob_from_json(value: Any) -> bytes:
    """Bytes stored as ``{"base64": ...}`` (empty when absent)."""
    return base64.b64decode(value["base64"]) if isinstance(value, Mapping) and "base64" in value else b""


# ---------------------------------------------------------------------------------------
# Sections of a stored JSON result, as the result endpoints answer them


def params_section(result_json: Mapping[str, Any]) -> dict[str, Any]:
    return {"guide_params": result_json.get("guide_params") or {},
            "model_params": result_json.get("model_params") or {}}


def samples_section(result_json: Mapping[str, Any]) -> dict[str, Any]:
    body = {"samples": result_json.get("samples") or {}}
    if result_json.get("predictive"):
        body["predictive"] = result_json["predictive"]
    return body


def log_probs_section(result_json: Mapping[str, Any]) -> dict[str, Any]:
    return {"log_probs": result_json.get("log_probs") or {}}


def diagnostics_section(result_json: Mapping[str, Any]) -> dict[str, Any]:
    return {"diagnostics": result_json.get("diagnostics") or {}, "meta": result_json.get("meta") or {}}


def summary_section(result_json: Mapping[str, Any]) -> dict[str, Any]:
    return {"summary": result_json.get("summary") or {}}


# ---------------------------------------------------------------------------------------
# Flat {name: array} forms


def samples_arrays(samples: Mapping[str, Any], predictive: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Posterior samples by site, predictive ones prefixed ``predictive/`` (a site name can
    never collide with it)."""
    arrays = {k: to_numpy(v) for k, v in samples.items()}
    arrays.update({f"predictive/{k}": to_numpy(v) for k, v in (predictive or {}).items()})
    return arrays


def log_probs_arrays(log_probs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``log_joint``, ``log_q``, ``log_weight`` (...) and ``model_sites/<site>``,
    ``guide_sites/<site>``, ``pointwise/<site>``, ``draws/<site>``."""
    arrays = {key: to_numpy(log_probs[key]) for key in ARRAY_LOG_PROB_KEYS if key in log_probs}
    for key in DICT_LOG_PROB_KEYS:
        for site, value in (log_probs.get(key) or {}).items():
            arrays[f"{key}/{site}"] = to_numpy(value)
    return arrays


def flatten_arrays(obj: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """``{"guide_params": {"mu": {"value": [..]}}}`` -> ``{"guide_params/mu": array}``: the
    numeric leaves of a JSON section (a ``{"value": ...}`` record, a fitted parameter with
    shape and constraint, contributes its value), as float arrays."""
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, Mapping):
        if "value" in obj and not isinstance(obj["value"], Mapping):
            array = _numeric(obj["value"])
            if array is not None and prefix:
                out[prefix] = array
            return out
        for key, value in obj.items():
            out.update(flatten_arrays(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    array = _numeric(obj)
    if array is not None and prefix:
        out[prefix] = array
    return out


def _numeric(value: Any) -> np.ndarray | None:
    if isinstance(value, (bool, int, float)) or isinstance(value, list):
        try:
            return np.asarray(value, dtype=float if not isinstance(value, bool) else bool)
        except (TypeError, ValueError):
            return None
    return None


def records_to_columns(records: Any, prefix: str) -> dict[str, np.ndarray]:
    """``[{"step": 0, "kl": {"mu": 1.0}}, ...]`` -> ``{"<prefix>/step": [...],
    "<prefix>/kl/mu": [...]}`` (missing values become NaN): ``elbo_terms`` and
    ``grad_norms`` as columns for the binary loss forms."""
    if not isinstance(records, list) or not records:
        return {}
    flat_rows = [flatten_arrays(r) if isinstance(r, Mapping) else {} for r in records]
    names = sorted({k for row in flat_rows for k, v in row.items() if v.ndim == 0})
    return {
        f"{prefix}/{name}": np.asarray([float(row[name]) if name in row else np.nan for row in flat_rows])
        for name in names
    }


# ---------------------------------------------------------------------------------------
# Encoders and readers


def encode_npz(arrays: Mapping[str, Any]) -> bytes:
    """``numpy.savez_compressed`` bytes (``np.load``-able; never pickled objects)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: to_numpy(value) for name, value in arrays.items()})
    return buffer.getvalue()


def read_npz(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def encode_safetensors(arrays: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> bytes:
    """safetensors bytes of numeric arrays (others as float64)."""
    from safetensors.numpy import save

    tensors = {}
    for name, value in arrays.items():
        array = _contiguous(to_numpy(value))
        tensors[name] = array if array.dtype.kind in "fiub" else array.astype(np.float64)
    return save(tensors, metadata=dict(metadata) if metadata else None)


def read_safetensors(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(arrays, metadata)`` of safetensors bytes."""
    from safetensors.numpy import load

    header_size = int.from_bytes(blob[:8], "little")
    metadata = json.loads(blob[8:8 + header_size]).get("__metadata__") or {}
    return load(blob), metadata


def params_safetensors(guide_params: Mapping[str, Mapping], model_params: Mapping[str, Mapping]) -> bytes:
    """Constrained values of a phi/theta split (the JSON layout's param records) as
    safetensors; the constraints and the roles go into the metadata."""
    arrays, constraints, roles = {}, {}, {}
    for role, params in (("guide", guide_params), ("model", model_params)):
        for name, entry in params.items():
            arrays[name] = np.asarray(entry["value"], dtype=entry.get("dtype", "float32")).reshape(entry["shape"])
            constraints[name] = entry["constraint"]
            roles[name] = role
    return encode_safetensors(arrays, {
        "vihub.format": PARAMS_FORMAT,
        CONSTRAINTS_KEY: json.dumps(constraints),
        "vihub.roles": json.dumps(roles),
        "vihub.guide_params": json.dumps(list(guide_params)),
        "vihub.model_params": json.dumps(list(model_params)),
    })


def encode_pt(arrays: Mapping[str, Any]) -> bytes:
    """``torch.save`` of a dict of tensors (torch is imported here only)."""
    import torch

    buffer = io.BytesIO()
    torch.save({name: torch.as_tensor(_contiguous(to_numpy(a))) for name, a in arrays.items()}, buffer)
    return buffer.getvalue()


def _contiguous(array: np.ndarray) -> np.ndarray:
    # Not np.ascontiguousarray: it turns a 0-d array into shape (1,).
    return array if array.flags.c_contiguous else array.copy(order="C")


def encode_netcdf(arrays: Mapping[str, Any], *, sample_dims: int = 0, group: str = "posterior") -> bytes:
    """One netCDF4 (h5netcdf) group of flat arrays.

    ``sample_dims`` says how many leading axes are draws (1 for ``[num_samples, ...]``);
    they are named ``chain``/``draw`` as ArviZ expects, and then only arrays sized by the
    draws are kept (bookkeeping scalars would clash on the draw dim). ``/`` in a name
    becomes ``.`` (HDF5 reads ``/`` as a group separator).
    """
    import xarray as xr

    named = {name: to_numpy(a) for name, a in arrays.items()}
    if sample_dims:
        leading_sizes = [a.shape[0] for a in named.values() if a.ndim >= 1]
        draws = max(set(leading_sizes), key=leading_sizes.count) if leading_sizes else 0
        named = {name: a for name, a in named.items() if a.ndim >= 1 and a.shape[0] == draws}
    variables = {}
    for name, array in named.items():
        leading: tuple[str, ...] = ()
        if sample_dims:
            array = array.reshape((1,) + array.shape) if sample_dims == 1 else array
            leading = ("chain", "draw")
        dims = leading + tuple(f"{_nc_name(name)}_dim_{i}" for i in range(array.ndim - len(leading)))
        variables[_nc_name(name)] = (dims, array)
    buffer = io.BytesIO()
    xr.Dataset(variables).to_netcdf(buffer, engine="h5netcdf", group=group)
    return buffer.getvalue()


def _nc_name(name: str) -> str:
    return name.replace("/", ".")


def inference_data_netcdf(samples: Mapping[str, Any], predictive: Mapping[str, Any], log_probs: Mapping[str, Any],
                          *, diagnostics: Mapping[str, Any] | None = None,
                          meta: Mapping[str, Any] | None = None) -> bytes:
    """ArviZ InferenceData as netCDF4 (h5netcdf) bytes.

    Groups: ``posterior`` (one chain), ``posterior_predictive`` (when drawn),
    ``log_likelihood`` (pointwise per observed site and draw, for ``az.loo``),
    ``sample_stats`` (``lp`` = log p(x, z), ``log_q``, ``log_weight``). Draw counts of the
    groups need not match (each group has its own ``draw`` coordinate). Attributes: the
    schema version, ``pareto_k_hat``, and the vihub/pyro/torch versions.
    """
    import arviz as az  # lazy: inference must work without arviz/xarray

    def chains(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {k: to_numpy(v)[None, ...] for k, v in arrays.items()}

    groups: dict[str, Any] = {"posterior": chains(samples)}
    if predictive:
        groups["posterior_predictive"] = chains(predictive)
    pointwise = log_probs.get("pointwise") or {}
    if pointwise:
        groups["log_likelihood"] = chains(pointwise)
    stats = {name: log_probs[key]
             for name, key in (("lp", "log_joint"), ("log_q", "log_q"), ("log_weight", "log_weight"))
             if key in log_probs}
    if stats:
        groups["sample_stats"] = chains(stats)
    attrs: dict[str, Any] = {"vihub_schema_version": SCHEMA_VERSION}
    k_hat = (diagnostics or {}).get("k_hat")
    if k_hat is not None:
        attrs["pareto_k_hat"] = float(k_hat)
    for key in ("vihub", "pyro", "torch"):
        version = ((meta or {}).get("versions") or {}).get(key)
        if version:
            attrs[f"{key}_version"] = str(version)
    idata = az.from_dict(**groups, attrs=attrs)
    # h5netcdf through arviz writes to a path, not a buffer.
    fd, path = tempfile.mkstemp(suffix=".nc")
    os.close(fd)
    try:
        idata.to_netcdf(path, engine="h5netcdf")
        with open(path, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def read_netcdf(blob: bytes, group: str = "posterior") -> dict[str, np.ndarray]:
    """The variables of one group of netCDF bytes, by their netCDF names (a ``/`` written by
    :func:`encode_netcdf` reads back as ``.``)."""
    import xarray as xr

    with xr.open_dataset(io.BytesIO(blob), engine="h5netcdf", group=group) as dataset:
        return {str(name): np.asarray(dataset[name].values) for name in dataset.data_vars}
