"""Turning user data (JSON, CSV, NPZ, Parquet) into named numpy arrays, safely.

Every field becomes a numeric numpy array (bool, int64 or float64) or a Python number;
anything else — ragged nested lists, strings, nulls, NaN or infinities, object arrays —
is refused with a 422 problem pointing at the field. NPZ files are read with
``allow_pickle=False``: user bytes are never unpickled.

The decoded fields are stored in the store's canonical NPZ (``store.arrays``), whose
sha256 addresses the dataset: the same data uploaded as CSV or as NPZ is stored once per
tenant.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from api.errors import InvalidData, UnsupportedMediaType

Arrays = dict[str, Any]  # name -> np.ndarray | int | float | bool

MAX_FIELDS = 1_000
MAX_NAME_CHARS = 200


def from_json_mapping(data: Any, *, pointer: str) -> Arrays:
    """Fields of a JSON object (``{"J": 8, "y": [28, 8, ...]}``)."""
    if not isinstance(data, Mapping):
        raise InvalidData("Data must be a JSON object of field name -> number or array.", pointer=pointer)
    if len(data) > MAX_FIELDS:
        raise InvalidData(f"At most {MAX_FIELDS} fields are allowed.", pointer=pointer)
    return {str(name): _field(name, value, pointer=f"{pointer}/{_escape(str(name))}") for name, value in data.items()}


def _field(name: Any, value: Any, *, pointer: str) -> Any:
    _check_name(str(name), pointer)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidData(f"Field {name!r} is {value}; data must be finite (no NaN or infinity).", pointer=pointer)
        return value
    if isinstance(value, list):
        return _numeric_array(name, value, pointer=pointer)
    raise InvalidData(
        f"Field {name!r} must be a number or a (nested) list of numbers, not {type(value).__name__}.",
        pointer=pointer,
    )


def _numeric_array(name: Any, value: Any, *, pointer: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as exc:  # numpy >= 1.24 refuses ragged nested lists
        raise InvalidData(
            f"Field {name!r} is not a rectangular array (its nested lists have different lengths).",
            pointer=pointer,
        ) from exc
    return check_array(name, array, pointer=pointer)


def check_array(name: Any, array: np.ndarray, *, pointer: str) -> np.ndarray:
    if array.dtype == object:
        raise InvalidData(
            f"Field {name!r} is not a rectangular numeric array (ragged lists, nulls or mixed types).",
            pointer=pointer,
        )
    kind = array.dtype.kind
    if kind in "US":
        raise InvalidData(f"Field {name!r} holds text; only numbers and booleans are accepted.", pointer=pointer)
    if kind not in "biuf":
        raise InvalidData(f"Field {name!r} has unsupported dtype {array.dtype}.", pointer=pointer)
    if kind == "f":
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise InvalidData(
                f"Field {name!r} contains NaN or infinity (first at index {list(index)}); "
                "data must be finite — drop or impute missing values, or use obs_mask.",
                pointer=pointer,
                index=list(index),
            )
        array = array.astype(np.float64, copy=False)
    elif kind in "iu":
        array = array.astype(np.int64, copy=False)
    # np.ascontiguousarray promotes 0-d to shape (1,): a scalar field (J = 8) must stay a
    # scalar so it binds as a Python number (plate sizes, range bounds).
    return np.ascontiguousarray(array) if array.ndim else array


def _check_name(name: str, pointer: str) -> None:
    if not name or len(name) > MAX_NAME_CHARS or not name.isidentifier():
        raise InvalidData(
            f"Field name {name!r} must be a Python identifier (it binds a model parameter).",
            pointer=pointer,
        )


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


# ---------------------------------------------------------------------------------------
# Files


def from_upload(content: bytes, *, filename: str | None, content_type: str | None) -> tuple[Arrays, str]:
    """Decode an uploaded file; returns (fields, format name)."""
    fmt = _sniff_format(content, filename, content_type)
    pointer = "/file"
    if fmt == "json":
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidData(f"The file is not valid JSON: {exc}", pointer=pointer) from exc
        return from_json_mapping(data, pointer=pointer), fmt
    if fmt == "npz":
        return _from_npz(content), fmt
    if fmt == "parquet":
        return _from_arrow_table(_read_parquet(content)), fmt
    return _from_arrow_table(_read_csv(content)), fmt


def _sniff_format(content: bytes, filename: str | None, content_type: str | None) -> str:
    name = (filename or "").lower()
    ctype = (content_type or "").lower()
    if name.endswith(".npz") or "npz" in ctype or content[:4] == b"PK\x03\x04":
        return "npz"
    if name.endswith((".parquet", ".pq")) or "parquet" in ctype or content[:4] == b"PAR1":
        return "parquet"
    if name.endswith(".json") or "json" in ctype:
        return "json"
    if name.endswith((".csv", ".txt")) or "csv" in ctype or ctype.startswith("text/"):
        return "csv"
    stripped = content.lstrip()[:1]
    if stripped in (b"{",):
        return "json"
    if not name and not ctype:
        return "csv"
    raise UnsupportedMediaType(
        f"Cannot read {filename or 'the upload'} ({content_type or 'no content type'}); "
        "upload CSV, NPZ, Parquet or JSON."
    )


def _from_npz(content: bytes) -> Arrays:
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as npz:
            names = list(npz.files)
            if len(names) > MAX_FIELDS:
                raise InvalidData(f"At most {MAX_FIELDS} fields are allowed.", pointer="/file")
            out: Arrays = {}
            for name in names:
                pointer = f"/file/{_escape(name)}"
                _check_name(name, pointer)
                try:
                    array = npz[name]
                except ValueError as exc:  # object arrays need pickle: refused
                    raise InvalidData(f"Field {name!r} needs pickle to load; refused.", pointer=pointer) from exc
                out[name] = check_array(name, array, pointer=pointer)
            return out
    except InvalidData:
        raise
    except Exception as exc:
        raise InvalidData(f"The file is not a readable NPZ archive: {exc}", pointer="/file") from exc


def _read_csv(content: bytes) -> Any:
    import pyarrow.csv as pacsv

    try:
        return pacsv.read_csv(io.BytesIO(content))
    except Exception as exc:
        raise InvalidData(f"The file is not readable CSV: {exc}", pointer="/file") from exc


def _read_parquet(content: bytes) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(io.BytesIO(content))
    except Exception as exc:
        raise InvalidData(f"The file is not readable Parquet: {exc}", pointer="/file") from exc


def _from_arrow_table(table: Any) -> Arrays:
    """Each column becomes a field; a list column with equal-length lists becomes 2-D."""
    if table.num_columns > MAX_FIELDS:
        raise InvalidData(f"At most {MAX_FIELDS} fields (columns) are allowed.", pointer="/file")
    out: Arrays = {}
    for name in table.column_names:
        pointer = f"/file/{_escape(name)}"
        _check_name(name, pointer)
        column = table.column(name)
        if column.null_count:
            raise InvalidData(
                f"Column {name!r} has {column.null_count} missing value(s); data must be complete.",
                pointer=pointer,
            )
        values = column.to_pylist()
        out[name] = _numeric_array(name, values, pointer=pointer)
    return out


# ---------------------------------------------------------------------------------------
# Size


def nbytes(fields: Mapping[str, Any]) -> int:
    return int(sum(np.asarray(v).nbytes for v in fields.values()))

