"""Large datasets: an uploaded file on disk turned into the canonical NPZ on disk, and
the rows a trial run sees of a dataset too large to trace whole.

``canonicalize_file(src, out, filename=, content_type=, max_decoded_bytes=,
in_memory_max_bytes=) -> (fields, format)`` writes ``out`` (the canonical NPZ,
``store.blobs.npz``). NPZ files are converted member by member, 1 MiB at a time, with
the same safety checks as single-request uploads (``api.datasets.arrays``: zip central
directory and ``.npy`` headers give the decoded size before a byte is decompressed,
members must be ``<field>.npy``, no pickle, finite numbers, int64 range); the API
process never holds more than a chunk of the file, whatever its size. CSV, Parquet and
JSON files up to ``in_memory_max_bytes`` are decoded in memory by ``from_upload`` (their
decoded size is capped at the same value); larger ones are refused with a hint to send
NPZ.

``trial_fields(arrays, max_bytes)``: the API traces a submission once before accepting
it; for a dataset over ``max_bytes`` that trial sees the first rows only (see the
function).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from api.datasets import arrays
from api.datasets.arrays import (
    INT64_MAX,
    _escape,
    _out_of_range,
    _read_exact,
    _sniff_format,
    canonical_dtype,
    check_array,
    checked_npz_members,
)
from api.errors import InvalidData, PayloadTooLarge
from common.arrays import encode_arrays
from store.blobs.npz import CanonicalNpzWriter

_CHUNK = 1 << 20
# A Fortran-ordered member is transposed in memory; up to this size only.
_FORTRAN_MAX_BYTES = 64 << 20


def canonicalize_file(src: Path, out: Path, *, filename: str | None, content_type: str | None,
                      max_decoded_bytes: int, in_memory_max_bytes: int) -> tuple[dict[str, Any], str]:
    with open(src, "rb") as f:
        head = f.read(8)
    size = src.stat().st_size
    fmt = _sniff_format(head, filename, content_type)
    if fmt == "npz":
        return _npz_to_canonical(src, out, max_decoded_bytes), fmt
    if size > in_memory_max_bytes:
        raise PayloadTooLarge(
            f"A {fmt.upper()} file is decoded in memory up to {in_memory_max_bytes} bytes "
            f"(uploads.in_memory_max_bytes); this one is {size}. Send large data as NPZ "
            "(numpy.savez), which is converted streamed at any size.",
            pointer="/file", limit=in_memory_max_bytes,
        )
    fields, fmt = arrays.from_upload(src.read_bytes(), filename=filename, content_type=content_type,
                                     max_decoded_bytes=min(max_decoded_bytes, in_memory_max_bytes))
    if not fields:
        raise InvalidData("The dataset has no fields.", pointer="/file")
    encoded = encode_arrays(fields)
    out.write_bytes(encoded.content)
    return encoded.fields, fmt


def _npz_to_canonical(src: Path, out: Path, limit: int) -> dict[str, Any]:
    try:
        archive = zipfile.ZipFile(src)
    except Exception as exc:
        raise InvalidData(f"The file is not a readable NPZ archive: {exc}", pointer="/file") from exc
    with archive:
        headers = checked_npz_members(archive, limit)
        if not headers:
            raise InvalidData("The dataset has no fields.", pointer="/file")
        with CanonicalNpzWriter(out) as writer:
            for name, info, shape, fortran, dtype, offset in sorted(headers, key=lambda h: h[0]):
                pointer = f"/file/{_escape(name)}"
                try:
                    _convert_member(archive, writer, name, info, shape, fortran, dtype, offset, pointer)
                except (InvalidData, PayloadTooLarge):
                    raise
                except Exception as exc:  # CRC mismatch, truncated deflate stream, ...
                    raise InvalidData(f"Field {name!r} could not be read from the NPZ archive: {exc}",
                                      pointer=pointer) from exc
            return dict(writer.fields)


def _convert_member(archive: zipfile.ZipFile, writer: CanonicalNpzWriter, name: str, info: zipfile.ZipInfo,
                    shape: tuple[int, ...], fortran: bool, dtype: np.dtype, offset: int, pointer: str) -> None:
    if (fortran and len(shape) > 1) or not shape:
        # Transposing needs the whole array; a scalar is one value.
        if math.prod(shape) * dtype.itemsize > _FORTRAN_MAX_BYTES:
            raise InvalidData(f"Field {name!r} is Fortran-ordered and larger than {_FORTRAN_MAX_BYTES} bytes; "
                              "save it C-ordered (numpy.ascontiguousarray) to upload it.", pointer=pointer)
        with archive.open(info) as stream:
            stream.read(offset)
            array = _read_exact(stream, shape, fortran, dtype)
        writer.add_array(name, check_array(name, array, pointer=pointer))
        return
    canonical = canonical_dtype(dtype)
    total = math.prod(shape)
    per_chunk = max(1, _CHUNK // dtype.itemsize)
    with archive.open(info) as stream, writer.member(name, canonical, shape) as sink:
        stream.read(offset)
        done = 0
        while done < total:
            want = min(per_chunk, total - done) * dtype.itemsize
            chunk = stream.read(want)
            while len(chunk) < want:
                more = stream.read(want - len(chunk))
                if not more:
                    raise InvalidData(f"Field {name!r}: the .npy member is shorter than its header says.",
                                      pointer=pointer)
                chunk += more
            values = np.frombuffer(chunk, dtype=dtype)
            _check_chunk(name, values, done, shape, pointer)
            sink.write(memoryview(values.astype(canonical, copy=False)).cast("B"))
            done += len(values)
        stream.read(1)  # reach the end: zipfile checks the member's CRC there


def _check_chunk(name: str, values: np.ndarray, start: int, shape: tuple[int, ...], pointer: str) -> None:
    """``check_array``'s value checks on a slice of the flattened array."""
    kind = values.dtype.kind
    if kind == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            index = [int(i) for i in np.unravel_index(start + int(np.argmax(bad)), shape)]
            raise InvalidData(
                f"Field {name!r} contains NaN or infinity (first at index {index}); "
                "data must be finite — drop or impute missing values, or use obs_mask.",
                pointer=pointer, index=index,
            )
    elif kind == "u" and values.dtype.itemsize >= 8 and values.size and int(values.max()) > INT64_MAX:
        flat = start + int(np.argmax(values > INT64_MAX))
        raise _out_of_range(name, pointer, [int(i) for i in np.unravel_index(flat, shape)])


def trial_fields(fields: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """In-memory fields for the submission's trial run.

    Up to ``max_bytes`` of arrays: all of them (copied out of their memory maps). Above:
    the first rows only. The rows are the leading dimension most arrays share (``N`` of
    ``x[N, D]`` and ``y[N]``); every array with that leading dimension is cut to the
    first ``k`` rows (``k`` keeps the total under ``max_bytes``), and an integer field
    equal to ``N`` (a row count passed as data) becomes ``k``. Other fields are kept
    whole. The worker fits the full data; a model that fails only on the full data
    fails there with the same problem.
    """
    total = sum(np.asarray(v).nbytes for v in fields.values() if isinstance(v, np.ndarray))
    if total <= max_bytes:
        return {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in fields.items()}
    leading = [v.shape[0] for v in fields.values() if isinstance(v, np.ndarray) and v.ndim]
    rows = max(set(leading), key=lambda n: (sum(v.nbytes for v in fields.values()
                                                  if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == n), n))
    sliced_bytes = sum(v.nbytes for v in fields.values() if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == rows)
    other = total - sliced_bytes
    k = max(1, min(rows, int(rows * max(max_bytes - other, 0) / max(sliced_bytes, 1))))
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == rows:
            out[name] = np.array(value[:k])
        elif isinstance(value, np.ndarray):
            out[name] = np.array(value)
        elif isinstance(value, int) and not isinstance(value, bool) and value == rows:
            out[name] = k
        else:
            out[name] = value
    return out
