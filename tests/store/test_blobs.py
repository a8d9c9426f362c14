"""The blob store contract, on the filesystem and on a real S3-protocol server (moto)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from s3_server import S3_KEY_ID, S3_SECRET, start_s3_server

from store.blobs import BlobNotFound, BlobStore, FilesystemBlobStore, blob_store, check_key


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    yield server.url
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    from store.blobs.s3 import S3BlobStore

    return S3BlobStore(f"b-{uuid.uuid4().hex[:10]}", prefix="unit", endpoint_url=request.getfixturevalue("s3_url"),
                       access_key_id=S3_KEY_ID, secret_access_key=S3_SECRET, create_bucket=True)


def test_put_get_size_delete(blobs: BlobStore) -> None:
    assert blobs.size("a/b.bin") is None and not blobs.exists("a/b.bin")
    with pytest.raises(BlobNotFound):
        blobs.get_bytes("a/b.bin")
    blobs.put_bytes("a/b.bin", b"hello")
    assert blobs.get_bytes("a/b.bin") == b"hello" and blobs.size("a/b.bin") == 5
    blobs.put_bytes("a/b.bin", b"replaced")
    assert blobs.get_bytes("a/b.bin") == b"replaced"
    blobs.delete("a/b.bin")
    assert not blobs.exists("a/b.bin")
    blobs.delete("a/b.bin")  # absent is fine


def test_files_stream_both_ways(blobs: BlobStore, tmp_path: Path) -> None:
    # Over boto3's 8 MiB multipart threshold, so the S3 path uses a multipart transfer.
    data = os.urandom(9 * 1024 * 1024 + 17)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    blobs.put_file("datasets/x.npz", source)
    assert blobs.size("datasets/x.npz") == len(data)
    target = tmp_path / "out.bin"
    blobs.download("datasets/x.npz", target)
    assert target.read_bytes() == data
    assert b"".join(blobs.iter_chunks("datasets/x.npz", 1 << 20)) == data
    assert blobs.sha256("datasets/x.npz") == hashlib.sha256(data).hexdigest()
    with blobs.open("datasets/x.npz") as stream:
        assert stream.read(10) == data[:10]
    with pytest.raises(BlobNotFound):
        blobs.download("datasets/missing.npz", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_delete_prefix(blobs: BlobStore) -> None:
    for n in range(3):
        blobs.put_bytes(f"uploads/u1/{n:05d}", b"x")
    blobs.put_bytes("uploads/u2/00000", b"y")
    assert blobs.delete_prefix("uploads/u1") == 3
    assert not blobs.exists("uploads/u1/00000") and blobs.exists("uploads/u2/00000")


def test_only_local_stores_have_local_paths(blobs: BlobStore) -> None:
    blobs.put_bytes("k", b"z")
    path = blobs.local_path("k")
    if isinstance(blobs, FilesystemBlobStore):
        assert path is not None and path.read_bytes() == b"z"
    else:
        assert path is None


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", "a//b", "a/b/", "sp ace", "a\x00b"])
def test_unsafe_keys_are_refused(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        check_key(key)
    with pytest.raises(ValueError):
        FilesystemBlobStore(tmp_path).put_bytes(key, b"x")


def test_settings_pick_the_backend(tmp_path: Path, s3_url: str) -> None:
    from common.settings import Settings

    fs = blob_store(Settings(home=tmp_path))
    assert isinstance(fs, FilesystemBlobStore) and fs.root == tmp_path / "blobs"
    s3 = blob_store(Settings(home=tmp_path, blobs={
        "backend": "s3", "s3_endpoint_url": s3_url, "s3_bucket": "from-settings",
        "s3_access_key_id": S3_KEY_ID, "s3_secret_access_key": S3_SECRET, "s3_create_bucket": True}))
    s3.put_bytes("probe", b"1")
    assert s3.get_bytes("probe") == b"1" and s3.name == "s3"
