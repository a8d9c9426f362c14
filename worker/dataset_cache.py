"""The worker side of the dataset cache: a job's dataset as a local, memory-mappable file.

Workers do not share a filesystem (scale-out: N hosts sharing Postgres, Redis and the
blob store). A job's dataset is fetched from the blob store into this host's cache
(``store.blobs.cache.DatasetCache``: by sha256, checked on download, bounded by
``dataset_cache.max_bytes``, least recently used evicted first, shared by the pool
processes of the host through a file lock) and the job's sandbox memory-maps it
(``store.blobs.npz.open_npz_mmap``): the second job on the same data on the same host
reads it from the local disk / page cache, and the pickled payload to the sandbox
carries a path, not gigabytes. The engine's data binding then moves each array to the
job's device once (``inference.language.bind_data``); minibatch plates
(``pyro.plate(..., subsample_size=...)``) index the tensors there.

Settings: ``VIHUB_DATASET_CACHE__DIR`` (default ``{home}/dataset-cache``),
``VIHUB_DATASET_CACHE__MAX_BYTES`` (default 20 GiB). See docs/operations.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.settings import Settings
from store.blobs import blob_store, dataset_cache


def local_dataset(settings: Settings, sha256: str, blob_key: str) -> Path:
    """A local file holding the dataset's canonical NPZ (fetched on a miss)."""
    return dataset_cache(settings).path(sha256, blob_key, blob_store(settings))


def load_mapped(path: Path | str) -> dict[str, Any]:
    """The dataset's fields memory-mapped (copy-on-write) from ``path``."""
    from store.blobs.npz import open_npz_mmap

    return open_npz_mmap(path)
