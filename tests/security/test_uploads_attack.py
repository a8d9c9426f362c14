"""A hostile tenant against chunked uploads, the blob store and the dataset cache: each
test is the minimal reproduction of a finding, kept as its regression test."""

from __future__ import annotations

import hashlib
import os
import time
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_problem, make_client, new_key
from fastapi.testclient import TestClient
from sqlalchemy import update

from store.models import Upload, utcnow

PART = 1024


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _npz(seed: int, n: int = 600) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.random.default_rng(seed).normal(size=n))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from make_client(tmp_path_factory.mktemp("uploads-attack"),
                           uploads={"max_open_per_tenant": 3, "max_open_bytes_per_tenant": 100_000})


def _create(client: TestClient, headers: dict[str, str], data: bytes, **extra: Any) -> dict[str, Any]:
    body = {"size_bytes": len(data), "sha256": _sha(data), "filename": "d.npz", "part_bytes": PART, **extra}
    response = client.post("/v1/datasets/uploads", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _put(client: TestClient, headers: dict[str, str], upload_id: str, n: int, part: bytes) -> Any:
    return client.put(f"/v1/datasets/uploads/{upload_id}/parts/{n}", content=part,
                      headers={**headers, "X-Content-SHA256": _sha(part)})


def _send_all(client: TestClient, headers: dict[str, str], data: bytes) -> str:
    upload = _create(client, headers, data)
    for n in range(1, upload["part_count"] + 1):
        assert _put(client, headers, upload["id"], n, data[(n - 1) * PART:n * PART]).status_code == 200
    return upload["id"]


def _runtime(client: TestClient) -> Any:
    return client.app.state.runtime


def _part_blobs(client: TestClient, upload_id: str) -> list[str]:
    folder = Path(_runtime(client).settings.home) / "blobs" / "uploads" / upload_id
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_an_expired_upload_cannot_be_completed(client: TestClient) -> None:
    # Was: parts were refused once expired, but complete still made the dataset (201).
    headers = new_key(client)
    upload_id = _send_all(client, headers, _npz(1))
    with _runtime(client).sessionmaker.begin() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(expires_at=utcnow() - timedelta(hours=1)))
    body = assert_problem(client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers), 409,
                          "upload-not-open")
    assert body["state"] == "expired"


def test_open_uploads_are_capped_per_tenant(client: TestClient) -> None:
    # Was: any number of open 4 GiB uploads per tenant, never completed (disk exhaustion).
    headers, other = new_key(client), new_key(client)
    ids = [_create(client, headers, _npz(10 + i))["id"] for i in range(3)]
    assert_problem(client.post("/v1/datasets/uploads", json={"size_bytes": 10, "sha256": "0" * 64},
                               headers=headers), 429, "too-many-open-uploads")
    _create(client, other, _npz(20))  # another tenant is not affected
    assert client.delete(f"/v1/datasets/uploads/{ids[0]}", headers=headers).status_code == 204
    _create(client, headers, _npz(13))  # an aborted upload frees its slot


def test_open_upload_bytes_are_capped_per_tenant(client: TestClient) -> None:
    headers = new_key(client)
    _create(client, headers, b"x" * 60_000)
    assert_problem(client.post("/v1/datasets/uploads", json={"size_bytes": 50_000, "sha256": "0" * 64},
                               headers=headers), 429, "too-many-open-uploads")
    _create(client, headers, b"y" * 40_000)  # up to the cap exactly


def test_expired_uploads_do_not_count_against_the_cap(client: TestClient) -> None:
    headers = new_key(client)
    ids = [_create(client, headers, _npz(30 + i))["id"] for i in range(3)]
    with _runtime(client).sessionmaker.begin() as session:
        session.execute(update(Upload).where(Upload.id.in_(ids)).values(expires_at=utcnow() - timedelta(hours=1)))
    _create(client, headers, _npz(33))


def test_one_complete_at_a_time_and_no_delete_or_part_meanwhile(client: TestClient) -> None:
    # Was: two completes both assembled the file; a DELETE during a complete answered 204,
    # left the upload "aborted" while the complete still made its dataset (201).
    from store.repositories.uploads import UploadRepository

    headers = new_key(client)
    data = _npz(2)
    upload_id = _send_all(client, headers, data)
    now = utcnow()
    with _runtime(client).sessionmaker.begin() as session:  # a complete in progress
        assert UploadRepository(session).claim(upload_id, now, now - timedelta(hours=1))
    complete = client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers)
    assert assert_problem(complete, 409, "upload-not-open")["state"] == "completing"
    assert_problem(client.delete(f"/v1/datasets/uploads/{upload_id}", headers=headers), 409, "upload-not-open")
    assert_problem(_put(client, headers, upload_id, 1, data[:PART]), 409, "upload-not-open")
    assert client.get(f"/v1/datasets/uploads/{upload_id}", headers=headers).json()["state"] == "completing"
    with _runtime(client).sessionmaker.begin() as session:  # it failed: the upload is open again
        UploadRepository(session).release(upload_id)
    done = client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers)
    assert done.status_code == 201, done.text
    assert client.get(f"/v1/datasets/uploads/{upload_id}", headers=headers).json()["state"] == "complete"
    assert _part_blobs(client, upload_id) == []


def test_completes_at_once_are_capped_per_tenant(client: TestClient) -> None:
    # Was: any number of completes at once per tenant, each assembling and decoding a file
    # in the API (twice its size in scratch; a 256 MiB JSON decodes to ~1.7 GB of RSS).
    from store.repositories.uploads import UploadRepository

    headers, other = new_key(client), new_key(client)
    ids = [_send_all(client, headers, _npz(40 + i)) for i in range(3)]
    now = utcnow()
    with _runtime(client).sessionmaker.begin() as session:
        for upload_id in ids[:2]:
            assert UploadRepository(session).claim(upload_id, now, now - timedelta(hours=1))
    refused = client.post(f"/v1/datasets/uploads/{ids[2]}/complete", headers=headers)
    assert_problem(refused, 429, "too-many-completes")
    assert refused.headers["Retry-After"]
    assert client.get(f"/v1/datasets/uploads/{ids[2]}", headers=headers).json()["state"] == "open"
    theirs = _send_all(client, other, _npz(43))
    assert client.post(f"/v1/datasets/uploads/{theirs}/complete", headers=other).status_code == 201
    with _runtime(client).sessionmaker.begin() as session:
        UploadRepository(session).release(ids[0])
    assert client.post(f"/v1/datasets/uploads/{ids[2]}/complete", headers=headers).status_code == 201


def test_a_crashed_complete_is_taken_over(client: TestClient) -> None:
    from store.repositories.uploads import UploadRepository

    headers = new_key(client)
    upload_id = _send_all(client, headers, _npz(3))
    long_ago = utcnow() - timedelta(hours=2)
    with _runtime(client).sessionmaker.begin() as session:
        assert UploadRepository(session).claim(upload_id, long_ago, long_ago - timedelta(hours=1))
    assert client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers).status_code == 201


def test_a_failed_complete_gives_the_upload_back(client: TestClient) -> None:
    headers = new_key(client)
    data = _npz(16)
    upload = _create(client, headers, data, sha256=_sha(b"something else"))  # a wrong declared digest
    for n in range(1, upload["part_count"] + 1):
        assert _put(client, headers, upload["id"], n, data[(n - 1) * PART:n * PART]).status_code == 200
    complete = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=headers)
    assert_problem(complete, 422, "checksum-mismatch")
    assert client.get(f"/v1/datasets/uploads/{upload['id']}", headers=headers).json()["state"] == "open"
    assert client.delete(f"/v1/datasets/uploads/{upload['id']}", headers=headers).status_code == 204
    assert _part_blobs(client, upload["id"]) == []


def test_a_file_that_is_not_a_dataset_ends_its_upload(client: TestClient) -> None:
    # Was: the upload stayed open with its parts after 422 invalid-data, though no retry
    # could ever succeed (the whole file's digest is fixed): parts held until expiry.
    headers = new_key(client)
    for data in (b"not an npz at all" * 100, _npz(17)[:-300]):
        upload_id = _send_all(client, headers, data)
        assert_problem(client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers), 422, "invalid-data")
        assert client.get(f"/v1/datasets/uploads/{upload_id}", headers=headers).json()["state"] == "aborted"
        assert _part_blobs(client, upload_id) == []
        again = client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers)
        assert assert_problem(again, 409, "upload-not-open")["state"] == "aborted"


def test_a_part_landing_after_complete_leaves_no_blob(client: TestClient, tmp_path: Path) -> None:
    # Was: a part whose body was still streaming when the upload completed (or was aborted)
    # was stored and recorded after the parts were deleted: an orphan blob forever.
    from api.datasets.uploads import UploadNotOpen, _store_part

    headers = new_key(client)
    data = _npz(4)
    upload_id = _send_all(client, headers, data)
    assert client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers).status_code == 201
    late = tmp_path / "late"
    late.write_bytes(data[:PART])
    with pytest.raises(UploadNotOpen):
        _store_part(_runtime(client), upload_id, 1, late, PART, _sha(data[:PART]))
    assert _part_blobs(client, upload_id) == []
    status = client.get(f"/v1/datasets/uploads/{upload_id}", headers=headers).json()
    assert status["state"] == "complete"

    aborted = _send_all(client, headers, _npz(5))
    assert client.delete(f"/v1/datasets/uploads/{aborted}", headers=headers).status_code == 204
    with pytest.raises(UploadNotOpen):
        _store_part(_runtime(client), aborted, 1, late, PART, _sha(data[:PART]))
    assert _part_blobs(client, aborted) == []


def test_a_part_replaced_during_complete_cannot_change_what_it_reads(client: TestClient, tmp_path: Path) -> None:
    # Was: parts lived under uploads/<id>/<n>, so a part re-sent while a complete read the
    # parts swapped the bytes under it; now a part's blob is named by its digest.
    from api.datasets.uploads import UploadNotOpen, _store_part
    from store.repositories.uploads import UploadRepository

    headers = new_key(client)
    data = _npz(6)
    upload_id = _send_all(client, headers, data)
    now = utcnow()
    with _runtime(client).sessionmaker.begin() as session:
        assert UploadRepository(session).claim(upload_id, now, now - timedelta(hours=1))
    other = tmp_path / "other"
    other.write_bytes(b"\xff" * PART)
    with pytest.raises(UploadNotOpen):  # its body streamed before the claim, its row comes after
        _store_part(_runtime(client), upload_id, 1, other, PART, _sha(b"\xff" * PART))
    with _runtime(client).sessionmaker.begin() as session:
        UploadRepository(session).release(upload_id)
    status = client.get(f"/v1/datasets/uploads/{upload_id}", headers=headers).json()
    assert status["parts"][0]["sha256"] == _sha(data[:PART])
    done = client.post(f"/v1/datasets/uploads/{upload_id}/complete", headers=headers)
    assert done.status_code == 201, done.text


def test_same_bytes_in_two_tenants_share_no_row(client: TestClient) -> None:
    alice, bob = new_key(client), new_key(client)
    data = _npz(7)
    a = client.post(f"/v1/datasets/uploads/{_send_all(client, alice, data)}/complete", headers=alice).json()
    b = client.post(f"/v1/datasets/uploads/{_send_all(client, bob, data)}/complete", headers=bob)
    assert b.status_code == 201 and b.json()["created"] is True  # nothing says alice has it
    assert b.json()["id"] != a["id"] and b.json()["sha256"] == a["sha256"]
    assert_problem(client.get(f"/v1/datasets/{a['id']}", headers=bob), 404)


class _LyingStore:
    """A remote store whose download writes ``bad`` bytes the first ``lies`` times."""

    def __init__(self, good: bytes, bad: bytes, lies: int) -> None:
        self.good, self.bad, self.lies, self.downloads = good, bad, lies, 0

    def local_path(self, key: str) -> None:
        return None

    def download(self, key: str, path: Any) -> None:
        self.downloads += 1
        Path(path).write_bytes(self.bad if self.downloads <= self.lies else self.good)


def test_the_cache_never_keeps_wrong_bytes_and_a_lost_blob_fails_fast(tmp_path: Path) -> None:
    # Was: a corrupt download raised a plain exception the worker did not handle (the job
    # was retried until its attempts ran out); now it is retried once, then BlobNotFound
    # (the job fails with data-missing) and nothing is cached.
    from store.blobs import BlobNotFound
    from store.blobs.cache import CorruptBlob, DatasetCache

    good = _npz(8)
    cache = DatasetCache(tmp_path / "cache", 10**9)
    glitch = _LyingStore(good, b"evil", lies=1)
    path = cache.path(_sha(good), "datasets/x.npz", glitch)  # type: ignore[arg-type]
    assert path.read_bytes() == good and glitch.downloads == 2

    other = _npz(9)
    liar = _LyingStore(other, b"evil", lies=10)
    with pytest.raises(CorruptBlob) as caught:
        cache.path(_sha(other), "datasets/y.npz", liar)  # type: ignore[arg-type]
    assert isinstance(caught.value, BlobNotFound)
    assert not cache.entry(_sha(other)).exists()
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".fetch-")] == []


def test_the_sdk_waits_for_a_complete_already_running(client: TestClient, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A retried complete (the first one's answer was lost) now finds the upload
    # "completing" (409): the SDK waits for it and answers its dataset.
    import threading

    from store.repositories.uploads import UploadRepository
    from vihub_client import Client, _upload

    monkeypatch.setattr(_upload, "COMPLETING_POLL_S", 0.05)
    headers = new_key(client)
    data = _npz(11)
    upload_id = _send_all(client, headers, data)
    now = utcnow()
    with _runtime(client).sessionmaker.begin() as session:
        assert UploadRepository(session).claim(upload_id, now, now - timedelta(hours=1))
    sdk = Client("http://testserver", headers["Authorization"].split()[1], transport=client._transport, retries=0)
    path = tmp_path / "d.npz"
    path.write_bytes(data)
    job = _upload.ChunkedUpload(sdk._run, "http://testserver", path, filename="d.npz", name=None)

    def finish_the_first() -> None:  # the first complete fails; the upload is open again
        with _runtime(client).sessionmaker.begin() as session:
            UploadRepository(session).release(upload_id)

    timer = threading.Timer(0.3, finish_the_first)
    timer.start()
    try:
        dataset = job._complete(upload_id)
    finally:
        timer.join()
    assert dataset.sha256 and client.get(f"/v1/datasets/uploads/{upload_id}", headers=headers).json()["state"] == "complete"


def test_a_dataset_whose_blob_is_gone_is_a_problem_not_a_500(client: TestClient) -> None:
    # Was: /v1/validate and /v1/jobs on a dataset whose blob had disappeared answered 500.
    headers = new_key(client)
    data = _npz(12)
    dataset = client.post(f"/v1/datasets/uploads/{_send_all(client, headers, data)}/complete", headers=headers).json()
    blob = Path(_runtime(client).settings.home) / "blobs" / "datasets" / f"{dataset['sha256']}.npz"
    moved = blob.with_suffix(".moved")
    blob.rename(moved)
    try:
        body = {"model": {"catalog": "eight_schools_noncentered"}, "guide": {"auto": "AutoNormal"},
                "data": {"dataset_id": dataset["id"]}, "inference": {"steps": 10}}
        for path in ("/v1/validate", "/v1/jobs"):
            problem_body = assert_problem(client.post(path, json=body, headers=headers), 410, "data-missing")
            assert problem_body["pointer"] == "/data/dataset_id"
    finally:
        moved.rename(blob)


def test_a_path_the_cache_just_gave_out_is_not_evicted_before_use(tmp_path: Path) -> None:
    # Was: with the cache near its bound, a path returned for one job (not yet mapped by its
    # sandbox) could be evicted by the next job's fetch: FileNotFoundError, a lost job.
    from store.blobs.cache import DatasetCache

    first, second = _npz(13), _npz(14)
    stores = {"a": _LyingStore(first, b"", 0), "b": _LyingStore(second, b"", 0)}
    unprotected = DatasetCache(tmp_path / "plain", max_bytes=len(first) + 10)
    given = unprotected.path(_sha(first), "datasets/a.npz", stores["a"])  # type: ignore[arg-type]
    unprotected.path(_sha(second), "datasets/b.npz", stores["b"])  # type: ignore[arg-type]
    assert not given.exists()  # the hazard, with no protection

    cache = DatasetCache(tmp_path / "cache", max_bytes=len(first) + 10, protect_recent_s=600)
    given = cache.path(_sha(first), "datasets/a.npz", stores["a"])  # type: ignore[arg-type]
    cache.path(_sha(second), "datasets/b.npz", stores["b"])  # type: ignore[arg-type]
    assert given.read_bytes() == first
    old = time.time() - 3600
    os.utime(given, (old, old))  # long unused: evicted at the next fetch
    cache.path(_sha(_npz(15)), "datasets/c.npz", _LyingStore(_npz(15), b"", 0))  # type: ignore[arg-type]
    assert not given.exists()


def test_the_configured_cache_protects_recent_entries() -> None:
    from common.settings import Settings
    from store.blobs import dataset_cache

    settings = Settings(home=Path("/tmp/vihub-attack-cache-settings"))
    assert dataset_cache(settings).protect_recent_s == settings.dataset_cache.protect_recent_s > 0


def test_results_whose_blob_is_gone_are_410_not_500(client: TestClient) -> None:
    # Was: every result endpoint of a job whose blob-backed result artifact had disappeared
    # answered 500; a lost binary form is now encoded from the JSON result instead.
    from api.jobs import results
    from store.blobs import blob_store
    from store.models import ArtifactKind, Job
    from store.repositories.artifacts import ArtifactRepository

    headers = new_key(client)
    body = {"model": {"catalog": "eight_schools_noncentered"}, "guide": {"auto": "AutoNormal"},
            "inference": {"steps": 10}}
    submitted = client.post("/v1/jobs", json=body, headers=headers)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    runtime = _runtime(client)
    blobs = blob_store(runtime.settings)
    with runtime.sessionmaker.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state="succeeded", finished_at=utcnow()))
        artifacts = ArtifactRepository(session, blobs=blobs, inline_max_bytes=0)
        result = artifacts.put(job_id, ArtifactKind.RESULT_JSON, b'{"params": {}}')
        samples = artifacts.put(job_id, ArtifactKind.SAMPLES_NPZ, b"not really an npz")
        result_key, samples_key = result.blob_key, samples.blob_key
    assert result_key and samples_key
    blobs.delete(samples_key)
    with runtime.sessionmaker() as session:
        job = session.get(Job, job_id)
        assert results.stored_blob(session, job, ArtifactKind.SAMPLES_NPZ) is None
    blobs.delete(result_key)
    for path in ("params", "summary", "samples", "diagnostics"):
        assert_problem(client.get(f"/v1/jobs/{job_id}/{path}", headers=headers), 410, "results-missing")


def test_a_lost_checkpoint_or_warm_start_blob_does_not_burn_every_attempt(client: TestClient) -> None:
    # Was: BlobNotFound escaped the worker's preparation; the job sat "running" until its
    # lease expired, was retried and failed only with too-many-attempts.
    from store.blobs import blob_store
    from store.models import ArtifactKind, Job
    from store.repositories.artifacts import ArtifactRepository
    from worker.runner import JobRunner
    from worker.warm_start import WarmStartFailed, load_warm_start

    headers = new_key(client)
    body = {"model": {"catalog": "eight_schools_noncentered"}, "guide": {"auto": "AutoNormal"},
            "inference": {"steps": 10}}
    source, target = (client.post("/v1/jobs", json={**body, "labels": {"n": str(i)}}, headers=headers).json()["id"]
                      for i in range(2))
    runtime = _runtime(client)
    blobs = blob_store(runtime.settings)
    with runtime.sessionmaker.begin() as session:
        session.execute(update(Job).where(Job.id == source).values(state="succeeded", finished_at=utcnow()))
        artifacts = ArtifactRepository(session, blobs=blobs, inline_max_bytes=0)
        keys = [artifacts.put(source, ArtifactKind.PARAMS_SAFETENSORS, b"params").blob_key,
                artifacts.put(target, ArtifactKind.CHECKPOINT, b"checkpoint", meta={"step": 5}).blob_key]
    for key in keys:
        blobs.delete(key)
    with runtime.sessionmaker() as session:
        with pytest.raises(WarmStartFailed, match="missing"):
            load_warm_start(session, target, {"job": source}, False)
        spec = dict(session.get(Job, target).spec)
    runner = JobRunner(target, settings=runtime.settings, factory=runtime.sessionmaker)
    _, _, resume_from = runner._prepare(spec, None)
    assert resume_from is None  # starts over instead of failing


def test_the_sweeper_purges_every_tenants_expired_uploads(client: TestClient) -> None:
    # Was: expired parts were deleted only when the same tenant started another upload; a
    # tenant that never came back held its parts in the blob store forever.
    from worker.sweeper import _purge_expired_uploads

    headers = new_key(client)
    upload_id = _send_all(client, headers, _npz(18))
    runtime = _runtime(client)
    assert upload_id not in _purge_expired_uploads(runtime.settings, runtime.sessionmaker)  # not expired yet
    with runtime.sessionmaker.begin() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(expires_at=utcnow() - timedelta(hours=1)))
    assert upload_id in _purge_expired_uploads(runtime.settings, runtime.sessionmaker)
    assert client.get(f"/v1/datasets/uploads/{upload_id}", headers=headers).json()["state"] == "aborted"
    assert _part_blobs(client, upload_id) == []


@pytest.mark.parametrize("raw", [b"true", b'"1000"', b"1e3", b"1000.0"])
def test_sizes_are_json_integers(client: TestClient, raw: bytes) -> None:
    # Was: {"size_bytes": true} started a 1-byte upload (lax coercion), "1000" and 1e3 too.
    headers = new_key(client)
    for member in (b"size_bytes", b"part_bytes"):
        size = raw if member == b"size_bytes" else b"5000"
        extra = b', "part_bytes": ' + raw if member == b"part_bytes" else b""
        body = b'{"size_bytes": ' + size + b', "sha256": "' + b"0" * 64 + b'"' + extra + b"}"
        response = client.post("/v1/datasets/uploads", content=body,
                               headers={**headers, "Content-Type": "application/json"})
        assert_problem(response, 422, "validation-error")
