"""A host-local cache of datasets by sha256: bounded, least recently used, shared by the
processes of one host.

``DatasetCache(root, max_bytes).path(sha256, blob_key, blobs) -> Path`` returns a local
file holding the dataset's canonical NPZ: a hit touches the entry (its mtime is the LRU
clock) and returns it; a miss downloads the blob to a temporary file in ``root``,
checks its sha256 (a corrupt copy is never cached), renames it into place, then evicts
least recently used entries until the cache is within ``max_bytes``. A blob the store
keeps on this host's filesystem (the embedded store) is read in place, not copied.

Concurrency: the processes of a host (Celery pool children, the API) serialise misses
and evictions through an ``flock`` on ``root/.lock``; a file being read stays valid
when it is evicted (unlinking an mmapped file keeps its pages until unmapped), so
eviction never breaks a running job. Entries are ``<sha256>.npz``; nothing else in
``root`` is touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from store.blobs.base import BlobNotFound, BlobStore
from store.blobs.npz import file_sha256

log = logging.getLogger("vihub.dataset_cache")


class CorruptBlob(BlobNotFound):
    """The downloaded blob's sha256 is not the one the store's metadata names (twice in a
    row): the dataset's bytes are lost, as if the blob were missing, so a job on it fails
    with ``data-missing`` at once instead of being retried until its attempts run out."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class DatasetCache:
    def __init__(self, root: Path | str, max_bytes: int, protect_recent_s: float = 0.0) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        # An entry used this recently is not evicted: the path ``path`` returned may not be
        # opened (memory-mapped) yet, by this process or a job's sandbox; once mapped, an
        # eviction is harmless. The cache may stay over ``max_bytes`` meanwhile.
        self.protect_recent_s = float(protect_recent_s)
        self.stats = CacheStats()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def entry(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / f"{sha256}.npz"

    def path(self, sha256: str, blob_key: str, blobs: BlobStore) -> Path:
        """A local file with the dataset (see the module docstring)."""
        local = blobs.local_path(blob_key)
        if local is not None:
            self.stats.hits += 1
            return local
        target = self.entry(sha256)
        if self._touch(target):
            self.stats.hits += 1
            return target
        with self._locked():
            if self._touch(target):  # another process fetched it meanwhile
                self.stats.hits += 1
                return target
            started = time.monotonic()
            fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.root)
            os.close(fd)
            try:
                for attempt in range(2):  # a second download rules out a transfer glitch
                    blobs.download(blob_key, tmp)
                    actual = file_sha256(tmp)
                    if actual == sha256:
                        break
                    log.warning("dataset cache: blob %s has sha256 %s, expected %s (download %d)",
                                blob_key, actual, sha256, attempt + 1)
                else:
                    raise CorruptBlob(f"blob {blob_key} has sha256 {actual}, expected {sha256}")
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.stats.misses += 1
            log.info("dataset %s fetched into the cache (%d bytes, %.1f s)", sha256[:12],
                     target.stat().st_size, time.monotonic() - started)
            self._evict(keep=target)
        return target

    def _touch(self, target: Path) -> bool:
        try:
            os.utime(target)
            return True
        except FileNotFoundError:
            return False

    def entries(self) -> list[tuple[Path, int, float]]:
        """(path, size, last use) of the cached datasets, least recently used first."""
        found = []
        for path in self.root.glob("*.npz"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            found.append((path, st.st_size, st.st_mtime))
        return sorted(found, key=lambda e: e[2])

    def size(self) -> int:
        return sum(size for _, size, _ in self.entries())

    def _evict(self, keep: Path) -> None:
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        recent = time.time() - self.protect_recent_s
        for path, size, used in entries:
            if total <= self.max_bytes:
                break
            if path == keep or used > recent:
                continue
            path.unlink(missing_ok=True)
            total -= size
            self.stats.evictions += 1
            log.info("dataset cache: evicted %s (%d bytes)", path.name[:12], size)
