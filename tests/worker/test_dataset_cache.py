"""The workers' dataset cache: by sha256, verified, bounded LRU, memory-mapped."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

from common.arrays import encode_arrays
from store.blobs import DatasetCache, FilesystemBlobStore
from store.blobs.base import BlobStore
from store.blobs.cache import CorruptBlob
from worker.dataset_cache import load_mapped


class RemoteLike(FilesystemBlobStore):
    """A filesystem store that pretends to be remote (no local paths), counting downloads."""

    downloads = 0

    def local_path(self, key: str) -> Path | None:
        return None

    def download(self, key: str, path: Path | str) -> None:
        type(self).downloads += 1
        super().download(key, path)


def put_dataset(blobs: BlobStore, n: int) -> tuple[str, str, dict]:
    data = {"x": np.arange(n, dtype=np.float64), "N": n}
    encoded = encode_arrays(data)
    key = f"datasets/{encoded.sha256}.npz"
    blobs.put_bytes(key, encoded.content)
    return encoded.sha256, key, data


def test_miss_then_hit_and_memory_mapped(tmp_path: Path) -> None:
    blobs = RemoteLike(tmp_path / "remote")
    RemoteLike.downloads = 0
    cache = DatasetCache(tmp_path / "cache", max_bytes=10**9)
    sha, key, data = put_dataset(blobs, 1000)
    first = cache.path(sha, key, blobs)
    second = cache.path(sha, key, blobs)
    assert first == second == tmp_path / "cache" / f"{sha}.npz"
    assert RemoteLike.downloads == 1 and (cache.stats.misses, cache.stats.hits) == (1, 1)
    mapped = load_mapped(first)
    assert isinstance(mapped["x"], np.memmap) and np.array_equal(mapped["x"], data["x"]) and mapped["N"] == 1000
    mapped["x"][0] = 42.0  # copy-on-write: the cached file is untouched
    assert load_mapped(first)["x"][0] == 0.0


def test_least_recently_used_is_evicted_beyond_the_bound(tmp_path: Path) -> None:
    blobs = RemoteLike(tmp_path / "remote")
    entries = [put_dataset(blobs, n) for n in (1000, 1001, 1002)]
    size = len(encode_arrays({"x": np.arange(1000.0), "N": 1000}).content)
    cache = DatasetCache(tmp_path / "cache", max_bytes=2 * size + 100)
    path_a, path_b = (cache.path(sha, key, blobs) for sha, key, _ in entries[:2])
    past = time.time() - 100
    os.utime(path_b, (past, past))  # b is older than a now...
    cache.path(entries[0][0], entries[0][1], blobs)  # ...and a is used again
    path_c = cache.path(entries[2][0], entries[2][1], blobs)
    assert path_a.exists() and path_c.exists() and not path_b.exists()
    assert cache.stats.evictions == 1 and cache.size() <= 2 * size + 100


def test_a_corrupt_download_is_not_cached(tmp_path: Path) -> None:
    blobs = RemoteLike(tmp_path / "remote")
    sha, key, _ = put_dataset(blobs, 10)
    blobs.put_bytes(key, b"not the dataset")
    cache = DatasetCache(tmp_path / "cache", max_bytes=10**9)
    with pytest.raises(CorruptBlob):
        cache.path(sha, key, blobs)
    assert list((tmp_path / "cache").glob("*.npz")) == [] and list((tmp_path / "cache").glob(".fetch-*")) == []


def test_a_local_filesystem_blob_is_read_in_place(tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    sha, key, _ = put_dataset(blobs, 10)
    cache = DatasetCache(tmp_path / "cache", max_bytes=10**9)
    assert cache.path(sha, key, blobs) == tmp_path / "blobs" / key
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("*.npz"))
    assert hashlib.sha256((tmp_path / "blobs" / key).read_bytes()).hexdigest() == sha
