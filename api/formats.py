"""Result downloads over HTTP: content negotiation and the response for a chosen format.

The encoders themselves live in ``inference.results.formats`` (torch-free), shared with
``FitResult`` and the worker, so a download built here from the stored JSON has the
layout of the artifact the worker stored.

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
from collections.abc import Mapping
from typing import Any

from fastapi.responses import Response

from api.errors import NotAcceptable
from inference.results import formats


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
    """A flat ``{name: array}`` mapping encoded in a binary format.

    ``sample_dims`` says how many leading axes are draws (1 for ``[num_samples, ...]``);
    netCDF output names them ``chain``/``draw`` as ArviZ expects.
    """
    if fmt is ResultFormat.npz:
        body = formats.encode_npz(arrays)
    elif fmt is ResultFormat.safetensors:
        body = formats.encode_safetensors(arrays)
    elif fmt is ResultFormat.netcdf:
        body = formats.encode_netcdf(arrays, sample_dims=sample_dims, group=group)
    elif fmt is ResultFormat.pt:
        body = formats.encode_pt(arrays)
    else:  # pragma: no cover - JSON is rendered by the caller
        raise ValueError(fmt)
    return binary_response(body, fmt, filename=filename)


def binary_response(body: bytes, fmt: ResultFormat, *, filename: str) -> Response:
    return Response(
        content=body,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{filename}.{EXTENSIONS[fmt]}"'},
    )
