"""Datasets and artifacts whose bytes live in the blob store: metadata in the row, bytes
outside, 64-bit sizes, replaced blobs handed back for deletion after the commit."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from store.blobs import FilesystemBlobStore
from store.models import ArtifactKind
from store.repositories import ArtifactRepository, DatasetRepository, JobRepository


def _job(factory: Any, tenant_id: str) -> str:
    with factory.begin() as s:
        return JobRepository(s).create(tenant_id=tenant_id, spec={"version": 1}).id


def test_large_artifacts_go_to_the_blob_store(session_factory: Any, tenant: Any, tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    job_id = _job(session_factory, tenant.id)
    big, small = b"c" * 2048, b"s" * 10
    with session_factory.begin() as s:
        repo = ArtifactRepository(s, blobs=blobs, inline_max_bytes=1024)
        first = repo.put(job_id, ArtifactKind.CHECKPOINT, big, meta={"step": 1})
        repo.put(job_id, ArtifactKind.RESULT_JSON, small)
        assert first.blob_key == f"artifacts/{job_id}/checkpoint-{hashlib.sha256(big).hexdigest()}"
        assert repo.replaced_blob_keys == []
    assert blobs.get_bytes(first.blob_key) == big
    with session_factory.begin() as s:
        repo = ArtifactRepository(s, blobs=blobs)
        assert repo.get_content(job_id, ArtifactKind.CHECKPOINT) == big
        artifact, content = repo.get_with_content(job_id, ArtifactKind.CHECKPOINT)
        assert content == big and artifact.size_bytes == 2048 and artifact.meta == {"step": 1}
        assert repo.get(job_id, ArtifactKind.RESULT_JSON).blob_key is None  # small: in the row
        assert repo.get_content(job_id, ArtifactKind.RESULT_JSON) == small
    # A newer checkpoint replaces the row; the old blob is handed back, not deleted yet.
    newer = b"n" * 4096
    with session_factory.begin() as s:
        repo = ArtifactRepository(s, blobs=blobs, inline_max_bytes=1024)
        second = repo.put(job_id, ArtifactKind.CHECKPOINT, newer, meta={"step": 2})
        assert repo.replaced_blob_keys == [first.blob_key]
    assert blobs.exists(first.blob_key)
    with session_factory.begin() as s:
        repo = ArtifactRepository(s, blobs=blobs)
        assert repo.delete(job_id, ArtifactKind.CHECKPOINT)
        assert repo.replaced_blob_keys == [second.blob_key]


def test_blob_datasets_keep_64_bit_sizes(session_factory: Any, tenant: Any) -> None:
    size = 6 * 1024**3  # beyond a 32-bit integer
    sha = "ab" * 32
    with session_factory.begin() as s:
        repo = DatasetRepository(s)
        dataset, created = repo.get_or_create(tenant.id, sha, None, {"x": {"dtype": "float64", "shape": [3]}},
                                              "npz", blob_key=f"datasets/{sha}.npz", size_bytes=size)
        again, created_again = repo.get_or_create(tenant.id, sha, None, {}, "npz", blob_key="other",
                                                  size_bytes=1)
    assert created and not created_again and again.id == dataset.id
    with session_factory.begin() as s:
        repo = DatasetRepository(s)
        location = repo.get_location(dataset.id)
        assert location == (sha, f"datasets/{sha}.npz", size)
        assert repo.get_content(dataset.id) is None
