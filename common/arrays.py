"""The canonical NPZ form of a dataset's arrays (what ``datasets.content`` holds).

``encode_arrays(data) -> EncodedArrays(content, sha256, fields)``: numbers and nested
lists become numpy arrays; the NPZ is written deterministically (sorted names, fixed zip
timestamps, no compression) so equal data always has the same sha256 — that is what
makes datasets content-addressed. ``decode_arrays(content)`` reads it back without
pickle; 0-d arrays come back as Python scalars (``J=8`` stays an int for data binding).

Records (nested data fields such as ``cfg = {"hidden": 16, "act": "relu"}``, checked by
``api.datasets.arrays``) are stored in one extra member, ``__records__.json``: a JSON
object of field name -> record, written canonically (sorted keys, no whitespace, ASCII)
after the ``.npy`` members. A field member is always ``<name>.npy``, so this name never
collides with a field; data without records has no such member and its bytes (hence its
sha256) are exactly what they were before records existed. Numeric lists inside a record
come back as numpy arrays (int64, float64 or bool), like top-level lists.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: the archive member holding the records (never ``<field>.npy``)
RECORDS_MEMBER = "__records__.json"


@dataclass(frozen=True)
class EncodedArrays:
    content: bytes
    sha256: str
    fields: dict[str, dict[str, Any]]


def encode_arrays(data: Mapping[str, Any]) -> EncodedArrays:
    buffer = io.BytesIO()
    fields: dict[str, dict[str, Any]] = {}
    records = {name: value for name, value in data.items() if isinstance(value, Mapping)}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(data):
            if name in records:
                continue
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
        if records:
            text = encode_records(records)
            info = zipfile.ZipInfo(RECORDS_MEMBER, date_time=_ZIP_DATE)
            info.external_attr = 0o600 << 16
            zf.writestr(info, text)
            for name, value in records.items():
                fields[name] = record_info(value)
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
            if name == RECORDS_MEMBER:
                out.update(decode_records(npz.zip.read(RECORDS_MEMBER)))
                continue
            array = npz[name]
            out[name] = array.item() if array.ndim == 0 else array
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def encode_records(records: Mapping[str, Any]) -> bytes:
    """The canonical text of the records member (equal records, equal bytes)."""
    return json.dumps(_jsonable(records), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def decode_records(text: bytes) -> dict[str, Any]:
    """Field name -> record (dicts; numeric lists as numpy arrays)."""
    records = json.loads(text)
    if not isinstance(records, dict):
        raise TypeError(f"{RECORDS_MEMBER} is not a JSON object")
    return {str(name): _from_json(value) for name, value in records.items()}


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        array = np.asarray(value)
        if array.dtype.kind == "f":
            return array.astype(np.float64, copy=False)
        if array.dtype.kind in "iu":
            return array.astype(np.int64, copy=False)
        return array
    return value


def record_info(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record's entry in a dataset's ``fields``: its kind and its top-level keys."""
    return {"kind": "record", "dtype": "record", "shape": [], "keys": sorted(str(k) for k in record)}
