"""The canonical NPZ form of a dataset's arrays (what ``datasets.content`` holds).

``encode_arrays(data) -> EncodedArrays(content, sha256, fields)``: numbers and nested
lists become numpy arrays; the NPZ is written deterministically (sorted names, fixed zip
timestamps, no compression) so equal data always has the same sha256 — that is what
makes datasets content-addressed. ``decode_arrays(content)`` reads it back without
pickle; 0-d arrays come back as Python scalars (``J=8`` stays an int for data binding).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class EncodedArrays:
    content: bytes
    sha256: str
    fields: dict[str, dict[str, Any]]


def encode_arrays(data: Mapping[str, Any]) -> EncodedArrays:
    buffer = io.BytesIO()
    fields: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(data):
            array = np.asarray(data[name])
            if array.dtype == object:
                raise ValueError(f"field {name!r} is not a numeric array")
            # not np.ascontiguousarray: it turns a 0-d array into shape (1,)
            array = np.array(array, order="C", copy=not array.flags.c_contiguous)
            # Written straight into the archive (no per-member copy): with the size set
            # first, zipfile writes exactly what ``writestr`` wrote, so digests are stable.
            header = io.BytesIO()
            _write_header(header, array)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o600 << 16
            info.file_size = len(header.getvalue()) + array.nbytes
            with zf.open(info, "w") as member:
                member.write(header.getvalue())
                if array.nbytes:
                    member.write(memoryview(array.reshape(-1).view(np.uint8)))
            fields[name] = {"dtype": str(array.dtype), "shape": list(array.shape)}
    content = buffer.getvalue()
    return EncodedArrays(content=content, sha256=hashlib.sha256(content).hexdigest(), fields=fields)


def _write_header(stream: io.BytesIO, array: np.ndarray) -> None:
    # What np.lib.format.write_array writes before the data of a C-ordered array.
    np.lib.format.write_array_header_1_0(stream, np.lib.format.header_data_from_array_1_0(array)) \
        if _fits_v1(array) else np.lib.format.write_array_header_2_0(
            stream, np.lib.format.header_data_from_array_1_0(array))


def _fits_v1(array: np.ndarray) -> bool:
    probe = io.BytesIO()
    try:
        np.lib.format.write_array_header_1_0(probe, np.lib.format.header_data_from_array_1_0(array))
        return True
    except ValueError:
        return False


def decode_arrays(content: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(content), allow_pickle=False) as npz:
        out: dict[str, Any] = {}
        for name in npz.files:
            array = npz[name]
            out[name] = array.item() if array.ndim == 0 else array
        return out
