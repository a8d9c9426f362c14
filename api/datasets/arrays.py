"""Turning user data (JSON, CSV, NPZ, Parquet) into named numpy arrays, safely.

Every field becomes a numeric numpy array (bool, int64 or float64) or a Python number;
anything else — ragged nested lists, strings, nulls, NaN or infinities, object arrays —
is refused with a 422 problem pointing at the field. NPZ files are read with
``allow_pickle=False``: user bytes are never unpickled.

The decoded fields are stored in the store's canonical NPZ (``common.arrays``), whose
sha256 addresses the dataset: the same data uploaded as CSV or as NPZ is stored once per
tenant.

Uploads are hostile input in the API process, so every format's *decoded* size is known
before anything is materialised (see "Files" below) and checked against the dataset quota
(``max_decoded_bytes``); over it is ``413 payload-too-large`` with ``decoded_bytes`` and
``limit``. The canonical decoded size is what ``nbytes`` measures afterwards: 8 bytes per
number (int64/float64), 1 per boolean.

Integers must fit int64: larger ones (inline JSON, JSON files, CSV, NPZ/Parquet uint64)
are refused with a 422 pointing at the field instead of wrapping or turning into floats.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from api.errors import InvalidData, PayloadTooLarge, UnsupportedMediaType
from api.hardening import (
    MAX_JSON_DEPTH,
    check_json_strings,
    check_json_text,
    json_value_limit,
)

Arrays = dict[str, Any]  # name -> np.ndarray | int | float | bool

MAX_FIELDS = 1_000
MAX_NAME_CHARS = 200
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# NPZ members and CSV/Parquet batches are decoded this many bytes / rows at a time.
_CHUNK_BYTES = 1 << 20
_BATCH_ROWS = 65_536


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
        if not INT64_MIN <= value <= INT64_MAX:
            raise _out_of_range(name, pointer, None)
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
    # numpy keeps ints beyond int64 as uint64 (wraps on the int64 cast), object, or float64
    # (mixed with negatives or floats): find the offending Python int and say where it is.
    if array.dtype.kind in "uOf" and array.size and (
        array.dtype.kind == "O" or (array.dtype.kind == "u" and int(array.max()) > INT64_MAX)
        or (array.dtype.kind == "f" and float(np.abs(array).max()) >= 2.0**63)
    ):
        index = _big_int_index(value, ())
        if index is not None:
            raise _out_of_range(name, pointer, index)
    return check_array(name, array, pointer=pointer)


def _big_int_index(value: Any, index: tuple[int, ...]) -> list[int] | None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _big_int_index(item, (*index, i))
            if found is not None:
                return found
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
        return list(index)
    return None


def _out_of_range(name: Any, pointer: str, index: list[int] | None) -> InvalidData:
    where = f" (first at index {index})" if index is not None else ""
    return InvalidData(
        f"Field {name!r} holds an integer outside the 64-bit range [{INT64_MIN}, {INT64_MAX}]{where}; "
        "send it as a float if that is what it is.",
        pointer=pointer, index=index,
    )


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
        if kind == "u" and array.dtype.itemsize >= 8 and array.size and int(array.max()) > INT64_MAX:
            flat = int(np.argmax(array.reshape(-1) > INT64_MAX))
            raise _out_of_range(name, pointer, [int(i) for i in np.unravel_index(flat, array.shape)])
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
#
# How each format's decoded size is bounded before it is materialised:
# - NPZ: members must be named ``<field>.npy``, stored or deflated (refused by the zip
#   central directory before a byte is decompressed); the central directory's
#   uncompressed sizes, then each member's ``.npy`` header (dtype, shape), give the
#   decoded size; a member is then decompressed streamed, 1 MiB at a time, into an array
#   allocated from its header (zipfile never yields more than the declared size). Object
#   dtypes are refused from the header (``allow_pickle`` never comes into it).
# - Parquet: the footer's schema (numeric / boolean / lists of them only) and per column
#   chunk ``num_values`` and ``total_uncompressed_size`` give the decoded size; rows are
#   then read in batches and the running decoded size is capped again.
# - CSV: read in 1 MiB blocks; the running decoded size is capped.
# - JSON: depth and value count measured on the text before parsing
#   (``api.hardening.json_shape``).


def from_upload(content: bytes, *, filename: str | None, content_type: str | None,
                max_decoded_bytes: int | None = None) -> tuple[Arrays, str]:
    """Decode an uploaded file; returns (fields, format name).

    ``max_decoded_bytes`` (the dataset quota) is checked against the decoded size before
    decoding; over it is ``PayloadTooLarge`` (413).
    """
    fmt = _sniff_format(content, filename, content_type)
    pointer = "/file"
    limit = max_decoded_bytes
    if fmt == "json":
        check_json_text(content, max_depth=MAX_JSON_DEPTH, pointer=pointer,
                        max_values=None if limit is None else json_value_limit(limit))
        check_json_strings(content, pointer=pointer)
        try:
            data = json.loads(content)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InvalidData(f"The file is not valid JSON: {exc}", pointer=pointer) from exc
        return from_json_mapping(data, pointer=pointer), fmt
    if fmt == "npz":
        return _from_npz(content, limit), fmt
    if fmt == "parquet":
        return _from_parquet(content, limit), fmt
    return _from_csv(content, limit), fmt


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


def _too_large(decoded: int, limit: int, what: str, *, at_least: bool = False) -> PayloadTooLarge:
    size = f"at least {decoded}" if at_least else str(decoded)
    return PayloadTooLarge(
        f"The {what} would decode to {size} bytes of arrays; the limit is {limit} "
        "(quotas.max_dataset_bytes).",
        pointer="/file", decoded_bytes=decoded, limit=limit,
    )


def canonical_dtype(dtype: np.dtype) -> np.dtype:
    """What a field of this dtype is stored as: bool, int64 or float64."""
    return np.dtype(bool) if dtype.kind == "b" else np.dtype(np.int64 if dtype.kind in "iu" else np.float64)


_NPZ_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
# numeric dtypes an .npy member may have (wider floats, complex, dates, text, objects: no)
_NPY_KINDS = {"b": (1,), "i": (1, 2, 4, 8), "u": (1, 2, 4, 8), "f": (2, 4, 8)}


class NpyMember(NamedTuple):
    """One ``.npy`` member of an NPZ archive as its (checked) header describes it."""

    name: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    offset: int


def checked_npz_members(archive: zipfile.ZipFile, limit: int | None) -> list[NpyMember]:
    """The archive's members with their headers, checked against ``limit`` (decoded bytes)
    before anything is decompressed; the in-memory and the streamed (``large``) readers
    both start here."""
    members = _npz_members(archive)
    # 1. The central directory: declared uncompressed sizes, before decompressing.
    declared = sum(info.file_size for _, info in members)
    if limit is not None and declared > limit + 16_384 * len(members):
        raise _too_large(declared, limit, "NPZ archive")
    # 2. Each member's .npy header: dtype and shape, hence the decoded size.
    headers = []
    decoded = 0
    for name, info in members:
        pointer = f"/file/{_escape(name)}"
        with archive.open(info) as stream:
            shape, fortran, dtype, offset = _npy_header(stream, name, pointer)
        raw = math.prod(shape) * dtype.itemsize
        if raw != info.file_size - offset:
            raise InvalidData(f"Field {name!r}: its .npy header describes {raw} bytes of data but the "
                              f"member holds {info.file_size - offset}.", pointer=pointer)
        decoded += math.prod(shape) * canonical_dtype(dtype).itemsize
        headers.append(NpyMember(name, info, shape, fortran, dtype, offset))
    if limit is not None and decoded > limit:
        raise _too_large(decoded, limit, "NPZ archive")
    return headers


def _from_npz(content: bytes, limit: int | None) -> Arrays:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except Exception as exc:
        raise InvalidData(f"The file is not a readable NPZ archive: {exc}", pointer="/file") from exc
    with archive:
        headers = checked_npz_members(archive, limit)
        # 3. Decompress streamed into arrays allocated from the (checked) headers.
        out: Arrays = {}
        for name, info, shape, fortran, dtype, offset in headers:
            pointer = f"/file/{_escape(name)}"
            try:
                with archive.open(info) as stream:
                    stream.read(offset)
                    array = _read_exact(stream, shape, fortran, dtype)
            except InvalidData:
                raise
            except Exception as exc:  # CRC mismatch, truncated deflate stream, ...
                raise InvalidData(f"Field {name!r} could not be read from the NPZ archive: {exc}",
                                  pointer=pointer) from exc
            out[name] = check_array(name, array, pointer=pointer)
        return out


def _npz_members(archive: zipfile.ZipFile) -> list[tuple[str, zipfile.ZipInfo]]:
    infos = archive.infolist()
    if len(infos) > MAX_FIELDS:
        raise InvalidData(f"At most {MAX_FIELDS} fields are allowed.", pointer="/file")
    members: list[tuple[str, zipfile.ZipInfo]] = []
    seen: set[str] = set()
    for info in infos:
        filename = info.filename
        if info.is_dir() or not filename.endswith(".npy"):
            raise InvalidData(f"The NPZ archive holds {filename!r}; only <field>.npy members are accepted.",
                              pointer="/file")
        name = filename[: -len(".npy")]
        pointer = f"/file/{_escape(name)}"
        _check_name(name, pointer)
        if name in seen:
            raise InvalidData(f"Field {name!r} appears twice in the NPZ archive.", pointer=pointer)
        seen.add(name)
        if info.compress_type not in _NPZ_COMPRESSION:
            raise InvalidData(f"Field {name!r} uses zip compression method {info.compress_type}; "
                              "only stored or deflated members are accepted.", pointer=pointer)
        if info.flag_bits & 0x1:
            raise InvalidData(f"Field {name!r} is encrypted.", pointer=pointer)
        members.append((name, info))
    return members


def _npy_header(stream: Any, name: str, pointer: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran_order, dtype, data offset) of an .npy stream, reading only its header."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(stream, max_header_size=10_000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(stream, max_header_size=10_000)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as exc:
        raise InvalidData(f"Field {name!r} is not a readable .npy array: {exc}", pointer=pointer) from exc
    if dtype.hasobject:
        raise InvalidData(f"Field {name!r} needs pickle to load (object dtype); refused.", pointer=pointer)
    if dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize not in _NPY_KINDS.get(dtype.kind, ()):
        raise InvalidData(f"Field {name!r} has unsupported dtype {dtype}; only booleans, integers "
                          "and floats up to 64 bits are accepted.", pointer=pointer)
    if len(shape) > 32 or any(d < 0 for d in shape):
        raise InvalidData(f"Field {name!r} has an invalid shape {shape}.", pointer=pointer)
    return tuple(int(d) for d in shape), bool(fortran), dtype, int(stream.tell())


def _read_exact(stream: Any, shape: tuple[int, ...], fortran: bool, dtype: np.dtype) -> np.ndarray:
    array = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
    view = memoryview(array.reshape(-1).view(np.uint8)) if array.size else memoryview(b"")
    position, total = 0, len(view)
    while position < total:
        chunk = stream.read(min(_CHUNK_BYTES, total - position))
        if not chunk:
            raise InvalidData("An .npy member is shorter than its header says.", pointer="/file")
        view[position:position + len(chunk)] = chunk
        position += len(chunk)
    stream.read(1)  # reach the end: zipfile checks the member's CRC there
    return array.T if fortran else array


def _from_csv(content: bytes, limit: int | None) -> Arrays:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    _check_utf8(content)
    batches = []
    decoded = 0
    try:
        reader = pacsv.open_csv(io.BytesIO(content),
                                read_options=pacsv.ReadOptions(block_size=_CHUNK_BYTES, use_threads=False))
        # The column types come from the first block: with the line count they give the
        # decoded size before the rest is parsed.
        if limit is not None:
            estimate = max(_csv_rows(content) - 1, 0) * sum(_arrow_itemsize(f.type) for f in reader.schema)
            if estimate > limit:
                raise _too_large(estimate, limit, "CSV file")
        for batch in reader:
            decoded += sum(batch.num_rows * _arrow_itemsize(f.type) for f in batch.schema)
            if limit is not None and decoded > limit:
                raise _too_large(decoded, limit, "CSV file", at_least=True)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=reader.schema)
    except (InvalidData, PayloadTooLarge):
        raise
    except Exception as exc:
        raise InvalidData(f"The file is not readable CSV: {exc}", pointer="/file") from exc
    fields = _from_arrow_table(table)
    # pyarrow reads an integer beyond int64 as a double: look at the text of such columns.
    for name, column in fields.items():
        if isinstance(column, np.ndarray) and column.dtype.kind == "f" and column.size \
                and float(np.abs(column).max()) >= 2.0**63:
            _refuse_big_csv_ints(content, name)
    return fields


def _check_utf8(content: bytes) -> None:
    """CSV text must be UTF-8 (pyarrow's reader assumes it; a name that is not raised
    UnicodeDecodeError -> 500). Checked in 1 MiB slices, nothing kept."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    position = 0
    try:
        for position in range(0, len(content), _CHUNK_BYTES):
            decoder.decode(content[position:position + _CHUNK_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InvalidData(
            f"The CSV file is not valid UTF-8 text (byte {position + exc.start}); save it as UTF-8.",
            pointer="/file",
        ) from None


def _check_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidData(f"Column {name!r} appears more than once; column names must be unique.",
                              pointer=f"/file/{_escape(name)}")
        seen.add(name)


def _csv_rows(content: bytes) -> int:
    """Non-empty lines (a line ends at a newline not preceded by another one), in slices."""
    rows = 0
    previous_newline = True
    for start in range(0, len(content), _CHUNK_BYTES):
        codes = np.frombuffer(content, dtype=np.uint8, count=min(_CHUNK_BYTES, len(content) - start), offset=start)
        newline = codes == 10
        before = np.empty_like(newline)
        before[0] = previous_newline
        before[1:] = newline[:-1]
        rows += int(np.count_nonzero(newline & ~before))
        previous_newline = bool(newline[-1])
    if content and not previous_newline:
        rows += 1
    return rows


_INTEGER_TEXT = re.compile(r"\s*[+-]?\d+\s*")


def _refuse_big_csv_ints(content: bytes, name: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = pacsv.read_csv(io.BytesIO(content), convert_options=pacsv.ConvertOptions(
        include_columns=[name], column_types={name: pa.string()})).column(name).to_pylist()
    for row, value in enumerate(text):
        if value is not None and _INTEGER_TEXT.fullmatch(value) and not INT64_MIN <= int(value) <= INT64_MAX:
            raise _out_of_range(name, f"/file/{_escape(name)}", [row])


def _from_parquet(content: bytes, limit: int | None) -> Arrays:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(content))
        metadata = parquet.metadata
        schema = parquet.schema_arrow
    except Exception as exc:
        raise InvalidData(f"The file is not readable Parquet: {exc}", pointer="/file") from exc
    if len(schema) > MAX_FIELDS:
        raise InvalidData(f"At most {MAX_FIELDS} fields (columns) are allowed.", pointer="/file")
    _check_unique(schema.names)
    # Types from the footer, before reading a page: only numbers, booleans, lists of them.
    for field in schema:
        pointer = f"/file/{_escape(field.name)}"
        _check_name(field.name, pointer)
        _leaf_type(field.name, field.type, pointer)
    leaves = {i: _arrow_itemsize(_leaf_type(f.name, f.type, "")) for i, f in enumerate(schema)}
    # Decoded size from the metadata: values per column chunk x canonical width; pages
    # decompressed alone must fit too.
    decoded = 0
    pages = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            width = leaves.get(_top_level_index(schema, chunk.path_in_schema), 8)
            decoded += max(int(chunk.num_values), int(group.num_rows)) * width
            pages += int(chunk.total_uncompressed_size)
    decoded = max(decoded, int(metadata.num_rows) * sum(leaves.values()))
    if limit is not None and max(decoded, pages) > limit:
        raise _too_large(max(decoded, pages), limit, "Parquet file")
    # Read in batches; the running size is capped again (the metadata could understate).
    batches = []
    running = 0
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
            running += sum(_arrow_values(col) * _arrow_itemsize(_leaf_type(f.name, f.type, ""))
                           for f, col in zip(batch.schema, batch.columns, strict=True))
            if limit is not None and running > limit:
                raise _too_large(running, limit, "Parquet file", at_least=True)
            batches.append(batch)
        table = pa.Table.from_batches(batches, schema=schema)
    except (InvalidData, PayloadTooLarge):
        raise
    except Exception as exc:
        raise InvalidData(f"The file is not readable Parquet: {exc}", pointer="/file") from exc
    return _from_arrow_table(table)


def _top_level_index(schema: Any, path: str) -> int:
    top = path.split(".", 1)[0]
    try:
        return schema.get_field_index(top)
    except Exception:
        return -1


def _is_list(arrow_type: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) \
        or pa.types.is_fixed_size_list(arrow_type)


def _leaf_type(name: str, arrow_type: Any, pointer: str) -> Any:
    """The element type of a (nested) list column; refuses anything not numeric."""
    import pyarrow as pa

    depth = 0
    while _is_list(arrow_type):
        arrow_type = arrow_type.value_type
        depth += 1
    if depth > 32:
        raise InvalidData(f"Column {name!r} nests lists too deep.", pointer=pointer)
    if pa.types.is_boolean(arrow_type) or pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) \
            or pa.types.is_null(arrow_type):
        return arrow_type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_binary(arrow_type):
        raise InvalidData(f"Field {name!r} holds text; only numbers and booleans are accepted.", pointer=pointer)
    raise InvalidData(f"Field {name!r} has unsupported type {arrow_type}.", pointer=pointer)


def _arrow_itemsize(arrow_type: Any) -> int:
    import pyarrow as pa

    return 1 if pa.types.is_boolean(arrow_type) else 8


def _arrow_values(array: Any) -> int:
    """Leaf values of an arrow array (rows for a flat column)."""
    values = len(array)
    while _is_list(array.type):
        array = array.flatten()
        values = len(array)
    return values


def _from_arrow_table(table: Any) -> Arrays:
    """Each column becomes a field; a list column with equal-length lists becomes 2-D."""
    if table.num_columns > MAX_FIELDS:
        raise InvalidData(f"At most {MAX_FIELDS} fields (columns) are allowed.", pointer="/file")
    _check_unique(table.column_names)
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
        _leaf_type(name, column.type, pointer)
        array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
        out[name] = check_array(name, _arrow_to_numpy(name, array, pointer), pointer=pointer)
    return out


def _arrow_to_numpy(name: str, array: Any, pointer: str) -> np.ndarray:
    """Without Python objects (``to_pylist`` costs ~50 bytes a value): list columns of equal
    lengths become extra dimensions."""
    import pyarrow.compute as pc

    if _is_list(array.type):
        if array.null_count:
            raise InvalidData(f"Column {name!r} has missing lists; data must be complete.", pointer=pointer)
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            raise InvalidData(
                f"Field {name!r} is not a rectangular array (its nested lists have different lengths).",
                pointer=pointer,
            )
        inner = _arrow_to_numpy(name, array.flatten(), pointer)
        width = int(lengths[0]) if len(lengths) else 0
        return inner.reshape((len(array), width, *inner.shape[1:]))
    if array.null_count:
        raise InvalidData(f"Column {name!r} has missing values; data must be complete.", pointer=pointer)
    if array.type.id == 0 or str(array.type) == "null":  # an all-null column of length 0
        return np.zeros(len(array), dtype=np.float64)
    return np.asarray(array.to_numpy(zero_copy_only=False))


# ---------------------------------------------------------------------------------------
# Size


def nbytes(fields: Mapping[str, Any]) -> int:
    return int(sum(np.asarray(v).nbytes for v in fields.values()))

