"""Resumable chunked uploads through HTTP, on the filesystem blob store and on a real
S3-protocol server (moto): parts checksummed, resumable, the whole file's sha256
verified, decoded with the single-request upload's checks, stored content-addressed."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from job_bodies import linear_job
from s3_server import S3_KEY_ID, S3_SECRET, start_s3_server

from common.arrays import encode_arrays

PART = 4096


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_s3_server(tmp_path_factory.mktemp("moto"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module", params=["filesystem+sqlite", "s3+postgres"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The app on the embedded pair (filesystem blobs, SQLite) and the production pair
    (moto S3, Postgres)."""
    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade

    home = tmp_path_factory.mktemp("uploads")
    url = request.getfixturevalue("pg_url") if request.param.endswith("postgres") \
        else f"sqlite:///{home / 'vihub.sqlite3'}"
    upgrade(url)
    blobs: dict[str, Any] = {"inline_max_bytes": 0}
    if request.param.startswith("s3"):
        blobs.update(backend="s3", s3_endpoint_url=request.getfixturevalue("s3_url"),
                     s3_bucket=f"uploads-{uuid.uuid4().hex[:8]}", s3_access_key_id=S3_KEY_ID,
                     s3_secret_access_key=S3_SECRET, s3_create_bucket=True)
    settings = Settings(home=home, database_url=url, broker_url=f"sqla+sqlite:///{home / 'broker.sqlite3'}",
                        auth="disabled", blobs=blobs,
                        quotas={"max_upload_bytes": 300_000, "max_dataset_bytes": 200_000},
                        uploads={"max_bytes": 50_000_000, "max_dataset_bytes": 2_000_000,
                                 "in_memory_max_bytes": 100_000, "trial_max_bytes": 20_000},
                        api={"dry_run_workers": 1, "dry_run_time_limit_s": 30.0})
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def npz_bytes(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def start(client: TestClient, content: bytes, filename: str = "data.npz", **extra: Any) -> dict[str, Any]:
    response = client.post("/v1/datasets/uploads", json={
        "size_bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(), "part_bytes": PART,
        "filename": filename, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def send(client: TestClient, upload: dict[str, Any], content: bytes, number: int, *, sha: str | None = None) -> Any:
    part = content[(number - 1) * upload["part_bytes"]: number * upload["part_bytes"]]
    return client.put(f"/v1/datasets/uploads/{upload['id']}/parts/{number}", content=part,
                      headers={"X-Content-SHA256": sha or hashlib.sha256(part).hexdigest(),
                               "Content-Type": "application/octet-stream"})


def test_parts_out_of_order_resume_and_complete(app: TestClient) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    y = rng.integers(0, 5, size=500).astype(np.int32)
    content = npz_bytes(x=x, y=y, m=np.arange(500) % 2 == 0, N=np.array(500))
    upload = start(app, content)
    count = upload["part_count"]
    assert count == -(-len(content) // PART) and upload["missing_parts"] == list(range(1, count + 1))
    # Every part but the second, in reverse order; then the "connection drops".
    for n in reversed(range(1, count + 1)):
        if n != 2:
            assert send(app, upload, content, n).status_code == 200
    early = app.post(f"/v1/datasets/uploads/{upload['id']}/complete")
    assert early.status_code == 409 and early.json()["type"].endswith("/upload-incomplete")
    assert early.json()["missing_parts"] == [2]
    # The resumed client asks what is missing and sends only that.
    status = app.get(f"/v1/datasets/uploads/{upload['id']}").json()
    assert status["missing_parts"] == [2] and len(status["parts"]) == count - 1
    assert send(app, upload, content, 2).status_code == 200
    done = app.post(f"/v1/datasets/uploads/{upload['id']}/complete")
    assert done.status_code == 201, done.text
    dataset = done.json()
    fields = {f["name"]: (f["dtype"], f["shape"]) for f in dataset["fields"]}
    assert fields == {"x": ("float64", [500, 4]), "y": ("int64", [500]), "m": ("bool", [500]), "N": ("int64", [])}
    # Canonical: the same data as a single-request upload is the same dataset.
    canonical = encode_arrays({"x": x.astype(np.float64), "y": y.astype(np.int64), "m": np.arange(500) % 2 == 0,
                               "N": 500})
    assert dataset["sha256"] == canonical.sha256 and dataset["size_bytes"] == len(canonical.content)
    again = app.post(f"/v1/datasets/uploads/{upload['id']}/complete")
    assert again.status_code == 200 and again.json()["id"] == dataset["id"]
    assert app.get(f"/v1/datasets/uploads/{upload['id']}").json()["state"] == "complete"
    # Parts are gone once complete; sending more is refused.
    late = send(app, upload, content, 1)
    assert late.status_code == 409 and late.json()["type"].endswith("/upload-not-open")


def test_a_corrupt_or_wrong_sized_part_is_refused_and_not_recorded(app: TestClient) -> None:
    content = npz_bytes(x=np.arange(3000.0))
    upload = start(app, content)
    bad = send(app, upload, content, 1, sha="0" * 64)
    assert bad.status_code == 422 and bad.json()["type"].endswith("/checksum-mismatch")
    short = app.put(f"/v1/datasets/uploads/{upload['id']}/parts/1", content=content[:100],
                    headers={"X-Content-SHA256": hashlib.sha256(content[:100]).hexdigest()})
    assert short.status_code == 422
    missing_header = app.put(f"/v1/datasets/uploads/{upload['id']}/parts/1", content=content[:PART])
    assert missing_header.status_code == 422
    beyond = send(app, upload, content, upload["part_count"] + 1, sha="a" * 64)
    assert beyond.status_code == 422
    assert app.get(f"/v1/datasets/uploads/{upload['id']}").json()["parts"] == []


def test_whole_file_checksum_is_verified(app: TestClient) -> None:
    content = npz_bytes(x=np.arange(1000.0))
    upload = app.post("/v1/datasets/uploads", json={"size_bytes": len(content), "sha256": "1" * 64,
                                                     "part_bytes": PART}).json()
    for n in range(1, upload["part_count"] + 1):
        assert send(app, upload, content, n).status_code == 200
    done = app.post(f"/v1/datasets/uploads/{upload['id']}/complete")
    assert done.status_code == 422 and done.json()["type"].endswith("/checksum-mismatch")


def upload_all(app: TestClient, content: bytes, filename: str = "data.npz") -> Any:
    upload = start(app, content, filename=filename)
    for n in range(1, upload["part_count"] + 1):
        assert send(app, upload, content, n).status_code == 200
    return app.post(f"/v1/datasets/uploads/{upload['id']}/complete")


def test_the_upload_safety_checks_apply(app: TestClient) -> None:
    values = np.arange(100_000.0)
    values[77_777] = np.nan
    nan = upload_all(app, npz_bytes(x=values))
    assert nan.status_code == 422 and nan.json()["index"] == [77_777]
    # Decoded size over uploads.max_dataset_bytes (2 MB): refused from the headers.
    bomb = io.BytesIO()
    np.savez_compressed(bomb, x=np.zeros(300_000))
    big = upload_all(app, bomb.getvalue())
    assert big.status_code == 413 and big.json()["decoded_bytes"] >= 2_400_000
    pickled = io.BytesIO()
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    refused = upload_all(app, pickled.getvalue())
    assert refused.status_code == 422 and "pickle" in refused.json()["detail"]
    huge_int = upload_all(app, npz_bytes(x=np.array([1, 2**63 + 5], dtype=np.uint64)))
    assert huge_int.status_code == 422 and huge_int.json()["index"] == [1]


def test_small_csv_is_decoded_in_memory_large_csv_is_refused(app: TestClient) -> None:
    small = b"x,y\n" + b"".join(f"{i},{2 * i}\n".encode() for i in range(200))
    done = upload_all(app, small, filename="d.csv")
    assert done.status_code == 201, done.text
    assert {f["name"]: f["shape"] for f in done.json()["fields"]} == {"x": [200], "y": [200]}
    large = b"x\n" + b"1.5\n" * 30_000  # over in_memory_max_bytes (100 kB)
    refused = upload_all(app, large, filename="d.csv")
    assert refused.status_code == 413 and "NPZ" in refused.json()["detail"]


def test_limits_and_tenancy(app: TestClient) -> None:
    over = app.post("/v1/datasets/uploads", json={"size_bytes": 50_000_001, "sha256": "a" * 64})
    assert over.status_code == 413
    assert app.get(f"/v1/datasets/uploads/{uuid.uuid4()}").status_code == 404
    assert app.get("/v1/datasets/uploads/not-an-id").status_code == 404
    upload = start(app, b"x\n1\n", filename="t.csv")
    assert app.delete(f"/v1/datasets/uploads/{upload['id']}").status_code == 204
    assert app.get(f"/v1/datasets/uploads/{upload['id']}").json()["state"] == "aborted"


def test_a_job_runs_its_trial_on_the_first_rows_of_a_large_dataset(app: TestClient) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=5000)
    y = 1.0 + 2.0 * x + rng.normal(scale=0.1, size=5000)
    done = upload_all(app, npz_bytes(x=x, y=y))  # 80 kB of arrays, trial_max_bytes is 20 kB
    assert done.status_code == 201, done.text
    body = linear_job()
    body["data"] = {"dataset_id": done.json()["id"]}
    job = app.post("/v1/jobs", json=body)
    assert job.status_code == 202, job.text
    assert job.json()["dataset_id"] == done.json()["id"]


def test_trial_fields_cut_rows_and_row_counts() -> None:
    from api.datasets.large import trial_fields

    fields = {"x": np.zeros((1000, 10)), "y": np.zeros(1000), "w": np.ones(3), "N": 1000, "K": 3}
    trial = trial_fields(fields, 10_000)
    k = trial["x"].shape[0]
    assert 1 <= k < 1000 and trial["y"].shape == (k,) and trial["N"] == k
    assert trial["w"].shape == (3,) and trial["K"] == 3
    assert sum(v.nbytes for v in trial.values() if isinstance(v, np.ndarray)) <= 10_000
    whole = trial_fields(fields, 10**9)
    assert whole["x"].shape == (1000, 10) and whole["N"] == 1000


def test_streamed_canonical_npz_equals_encode_arrays(tmp_path: Path) -> None:
    from api.datasets.large import canonicalize_file
    from store.blobs.npz import file_sha256, open_npz_mmap

    rng = np.random.default_rng(2)
    data = {"b": rng.normal(size=(300, 7)).astype(np.float16), "a": rng.integers(-9, 9, size=(5, 3, 2)),
            "f": np.asfortranarray(rng.normal(size=(4, 6))), "s": np.array(3.5), "e": np.zeros((0, 2))}
    src = tmp_path / "in.npz"
    src.write_bytes(npz_bytes(**data))
    fields, fmt = canonicalize_file(src, tmp_path / "out.npz", filename="in.npz", content_type=None,
                                    max_decoded_bytes=10**7, in_memory_max_bytes=10**6)
    expected = encode_arrays({k: (v.astype(np.float64) if v.dtype.kind == "f" else v.astype(np.int64))
                              if v.ndim else float(v) for k, v in data.items()})
    assert fmt == "npz" and fields == expected.fields
    assert file_sha256(tmp_path / "out.npz") == expected.sha256
    mapped = open_npz_mmap(tmp_path / "out.npz")
    assert isinstance(mapped["b"], np.memmap) and np.array_equal(mapped["b"], data["b"].astype(np.float64))
    assert np.array_equal(mapped["f"], data["f"]) and mapped["s"] == 3.5


def test_expired_uploads_are_refused_and_purged(app: TestClient) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from store.models import Upload, utcnow

    content = npz_bytes(x=np.arange(1000.0))
    upload = start(app, content)
    assert send(app, upload, content, 1).status_code == 200
    with app.app.state.runtime.sessionmaker.begin() as session:
        session.execute(update(Upload).where(Upload.id == upload["id"])
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    late = send(app, upload, content, 2)
    assert late.status_code == 409 and late.json()["state"] == "expired"
    start(app, b"x\n1\n", filename="t.csv")  # the tenant's next upload purges the expired one
    assert app.get(f"/v1/datasets/uploads/{upload['id']}").json()["state"] == "aborted"
