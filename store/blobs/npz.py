"""The canonical NPZ (``common.arrays``) written member by member and read memory-mapped.

``CanonicalNpzWriter(path)`` writes exactly the bytes ``common.arrays.encode_arrays``
would for the same arrays (sorted names, fixed timestamps, stored members, the same
``.npy`` headers), but streamed: a member's data is written in chunks, so a multi-GB
dataset never sits in memory. Members must be added in sorted name order.

``open_npz_mmap(path)`` maps each member of a canonical NPZ (stored, never deflated)
copy-on-write into memory: nothing is read until a page is touched, and every process on
the host shares the page cache. 0-d members come back as Python scalars, like
``decode_arrays``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from common.arrays import RECORDS_MEMBER, decode_records, encode_records, record_info

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The ``.npy`` header numpy writes for a C-ordered array (format 1.0, else 2.0)."""
    fmt = np.lib.format
    header = {"descr": fmt.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    stream = io.BytesIO()
    try:
        fmt.write_array_header_1_0(stream, header)
    except ValueError:
        stream = io.BytesIO()
        fmt.write_array_header_2_0(stream, header)
    return stream.getvalue()


class CanonicalNpzWriter:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_STORED)
        self.fields: dict[str, dict[str, Any]] = {}
        self._last: str | None = None

    @contextmanager
    def member(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> Iterator[BinaryIO]:
        """A stream for the raw C-ordered bytes of one array (exactly its ``nbytes``)."""
        if self._last is not None and name <= self._last:
            raise ValueError("members must be added in sorted order")
        self._last = name
        dtype = np.dtype(dtype)
        header = npy_header(dtype, shape)
        info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
        info.external_attr = 0o600 << 16
        info.file_size = len(header) + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._zip.open(info, "w") as stream:
            stream.write(header)
            yield stream
        self.fields[name] = {"dtype": str(dtype), "shape": [int(d) for d in shape]}

    def add_array(self, name: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        array = np.array(array, order="C", copy=not array.flags.c_contiguous)
        with self.member(name, array.dtype, array.shape) as out:
            if array.nbytes:
                out.write(memoryview(array.reshape(-1).view(np.uint8)))

    def add_records(self, records: dict[str, Any]) -> None:
        """The records member (nested data fields), after every array, as ``encode_arrays``
        writes it; nothing when there are none."""
        if not records:
            return
        info = zipfile.ZipInfo(RECORDS_MEMBER, date_time=_ZIP_DATE)
        info.external_attr = 0o600 << 16
        self._zip.writestr(info, encode_records(records))
        self.fields.update({name: record_info(value) for name, value in records.items()})

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> CanonicalNpzWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_sha256(path: Path | str, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def open_npz_mmap(path: Path | str) -> dict[str, Any]:
    """Copy-on-write memory maps of a canonical NPZ's members (``np.memmap``), by field name."""
    out: dict[str, Any] = {}
    with open(path, "rb") as raw, zipfile.ZipFile(raw) as archive:
        for info in archive.infolist():
            if info.filename == RECORDS_MEMBER:  # nested data fields (records), small JSON
                out.update(decode_records(archive.read(info)))
                continue
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                raise ValueError(f"{info.filename}: not a canonical (stored) NPZ member")
            # The member's data starts after its local file header (whose extra field may
            # differ from the central directory's), then the .npy header.
            raw.seek(info.header_offset)
            local = raw.read(30)
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            raw.seek(start)
            version = np.lib.format.read_magic(raw)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
            if fortran or dtype.hasobject:
                raise ValueError(f"{info.filename}: not a canonical array")
            offset = raw.tell()
            name = info.filename[: -len(".npy")]
            if not shape:
                value = np.frombuffer(raw.read(dtype.itemsize), dtype=dtype)[0]
                out[name] = value.item()
            elif int(np.prod(shape)) == 0:
                out[name] = np.zeros(shape, dtype=dtype)
            else:
                # Copy-on-write: a model that writes into its data gets private pages, never
                # touching the cached file (and never faulting on a read-only map).
                out[name] = np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=tuple(shape), order="C")
    return out
