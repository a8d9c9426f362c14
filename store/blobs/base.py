"""The ``BlobStore`` interface every backend implements."""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
CHUNK = 1 << 20


class BlobNotFound(KeyError):
    """No blob under that key."""


def check_key(key: str) -> str:
    """``key`` if it is a safe relative key (no ``..``, no absolute path); else ValueError."""
    parts = key.split("/")
    if not key or len(key) > 900 or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(ABC):
    """Whole-object storage. Writes are atomic: a reader sees the old blob, the new one
    or none, never a partial one."""

    name: str = "blobs"

    @abstractmethod
    def put_file(self, key: str, path: Path | str) -> None:
        """Store the file at ``path`` under ``key`` (streamed, any size)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The whole blob in memory (small blobs only); ``BlobNotFound`` if absent."""

    @abstractmethod
    def download(self, key: str, path: Path | str) -> None:
        """Write the blob to ``path`` (streamed; atomically replaced)."""

    @abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The blob's bytes, streamed."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The blob's size, or None when it does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob (absent is fine)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every blob whose key starts with ``prefix/``; returns how many."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def local_path(self, key: str) -> Path | None:
        """The blob's own file when it lives on this host's filesystem (read it in place,
        never write it); None for remote stores."""
        return None

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the blob (default: the streamed chunks)."""
        return _ChunkReader(self.iter_chunks(key))

    def sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        for chunk in self.iter_chunks(key):
            digest.update(chunk)
        return digest.hexdigest()


class _ChunkReader:
    """A minimal read-only file object over an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> _ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
