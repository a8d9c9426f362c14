"""Result download formats: content negotiation and array encoders.

A result endpoint answers JSON by default, or a binary form chosen by ``?format=`` (which
wins) or by the ``Accept`` header:

| format | media type | what it is |
|---|---|---|
| ``json`` | ``application/json`` | nested JSON (arrays as nested lists) |
| ``npz`` | ``application/x-npz`` | ``numpy.savez_compressed``; keys like ``guide_params/AutoNormal.locs.mu`` |
| ``safetensors`` | ``application/octet-stream`` | safetensors (no pickle) |
| ``netcdf`` | ``application/x-netcdf`` | netCDF4/HDF5, ArviZ groups (``posterior``, ...) |
| ``pt`` | ``application/x-pytorch`` | ``torch.save`` of a dict of tensors; for ``/params`` the Pyro param-store state |

gzip is negotiated separately (``Accept-Encoding``) by the app's ``GZipMiddleware``.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from fastapi.responses import Response

from api.errors import NotAcceptable


class ResultFormat(str, enum.Enum):
    json = "json"
    npz = "npz"
    safetensors = "safetensors"
    netcdf = "netcdf"
    pt = "pt"


MEDIA_TYPES = {
    ResultFormat.json: "application/json",
    ResultFormat.npz: "application/x-npz",
    ResultFormat.safetensors: "application/octet-stream",
    ResultFormat.netcdf: "application/x-netcdf",
    ResultFormat.pt: "application/x-pytorch",
}
_ACCEPT = {
    "application/json": ResultFormat.json,
    "application/x-npz": ResultFormat.npz,
    "application/octet-stream": ResultFormat.safetensors,
    "application/x-safetensors": ResultFormat.safetensors,
    "application/x-netcdf": ResultFormat.netcdf,
    "application/netcdf": ResultFormat.netcdf,
    "application/x-pytorch": ResultFormat.pt,
}
EXTENSIONS = {
    ResultFormat.json: "json",
    ResultFormat.npz: "npz",
    ResultFormat.safetensors: "safetensors",
    ResultFormat.netcdf: "nc",
    ResultFormat.pt: "pt",
}
_ARRAYS = (ResultFormat.json, ResultFormat.npz, ResultFormat.safetensors, ResultFormat.netcdf, ResultFormat.pt)
# The formats each result resource (``/v1/jobs/{id}/<name>``) offers: the routes negotiate
# with these and ``/v1/capabilities`` lists them, so the two cannot disagree.
RESULT_FORMATS: dict[str, tuple[ResultFormat, ...]] = {
    "params": (ResultFormat.json, ResultFormat.npz, ResultFormat.safetensors, ResultFormat.pt),
    "loss": (ResultFormat.json, ResultFormat.npz, ResultFormat.safetensors),
    "samples": _ARRAYS,
    "log-probs": _ARRAYS,
    "diagnostics": (ResultFormat.json,),
    "summary": (ResultFormat.json,),
}


def negotiate(requested: ResultFormat | None, accept: str | None, allowed: tuple[ResultFormat, ...]) -> ResultFormat:
    """The format to answer in: ``?format`` first, then ``Accept`` (by q-value), else JSON."""
    if requested is not None:
        if requested not in allowed:
            raise NotAcceptable(
                f"format={requested.value} is not available here; choose one of "
                + ", ".join(f.value for f in allowed) + "."
            )
        return requested
    if not accept:
        return ResultFormat.json
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if q > 0:
            ranked.append((-q, position, media.lower()))
    for _, _, media in sorted(ranked):
        if media in ("*/*", "application/*", "application/problem+json"):
            return ResultFormat.json
        fmt = _ACCEPT.get(media)
        if fmt is not None and fmt in allowed:
            return fmt
    raise NotAcceptable(
        "None of the media types in Accept is available; use one of "
        + ", ".join(MEDIA_TYPES[f] for f in allowed) + " or ?format=."
    )


def array_response(
    arrays: Mapping[str, Any],
    fmt: ResultFormat,
    *,
    filename: str,
    sample_dims: int = 0,
    group: str = "posterior",
) -> Response:
    """Encode a flat ``{name: array}`` mapping in a binary format.

    ``sample_dims`` says how many leading axes are draws (1 for ``[num_samples, ...]``);
    netCDF output names them ``chain``/``draw`` as ArviZ expects.
    """
    named = {name: np.ascontiguousarray(np.asarray(value)) for name, value in arrays.items()}
    if fmt is ResultFormat.npz:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **named)
        body = buffer.getvalue()
    elif fmt is ResultFormat.safetensors:
        from safetensors.numpy import save

        body = save({k: _safetensors_dtype(v) for k, v in named.items()})
    elif fmt is ResultFormat.netcdf:
        body = _netcdf(named, sample_dims=sample_dims, group=group)
    elif fmt is ResultFormat.pt:
        body = _torch_save(named)
    else:  # pragma: no cover - JSON is rendered by the caller
        raise ValueError(fmt)
    return binary_response(body, fmt, filename=filename)


def binary_response(body: bytes, fmt: ResultFormat, *, filename: str) -> Response:
    return Response(
        content=body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}.{EXTENSIONS[fmt]}"'},
    )


def _safetensors_dtype(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.float64:
        return array
    if array.dtype.kind in "fiub":
        return array
    return array.astype(np.float64)


def _netcdf(arrays: Mapping[str, np.ndarray], *, sample_dims: int, group: str) -> bytes:
    import xarray as xr

    variables = {}
    if sample_dims:
        # Only per-draw arrays belong in an InferenceData group; bookkeeping scalars such as
        # ``num_draws`` (and anything not sized by the draws) would clash on the draw dim.
        arrays = {name: np.asarray(a) for name, a in arrays.items()}
        leading_sizes = [a.shape[0] for a in arrays.values() if a.ndim >= 1]
        draws = max(set(leading_sizes), key=leading_sizes.count) if leading_sizes else 0
        arrays = {name: a for name, a in arrays.items() if a.ndim >= 1 and a.shape[0] == draws}
    for name, array in arrays.items():
        if sample_dims:
            array = array.reshape((1,) + array.shape) if sample_dims == 1 else array
            leading = ("chain", "draw")
        else:
            leading = ()
        rest = array.ndim - len(leading)
        dims = leading + tuple(f"{_nc_name(name)}_dim_{i}" for i in range(rest))
        variables[_nc_name(name)] = (dims, array)
    dataset = xr.Dataset(variables)
    buffer = io.BytesIO()
    dataset.to_netcdf(buffer, engine="h5netcdf", group=group)
    return buffer.getvalue()


def _nc_name(name: str) -> str:
    # HDF5 treats "/" as a group separator.
    return name.replace("/", ".")


def _torch_save(arrays: Mapping[str, np.ndarray]) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({name: torch.as_tensor(array) for name, array in arrays.items()}, buffer)
    return buffer.getvalue()


def downsample(steps: list[int], *series: list[Any], max_points: int | None) -> tuple[list[int], list[list[Any]]]:
    """At most ``max_points`` evenly spaced points, always keeping the first and the last."""
    n = len(steps)
    if max_points is None or n <= max_points:
        return list(steps), [list(s) for s in series]
    if max_points == 1:
        keep = [n - 1]
    else:
        keep = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [steps[i] for i in keep], [[s[i] for i in keep] for s in series]
