"""Datasets (JSON, CSV, NPZ, Parquet; dedup per tenant), catalog, validate, health, metrics."""

from __future__ import annotations

import io

import numpy as np


def test_json_dataset_reports_fields_and_sha256(api, headers):
    response = api.client.post("/v1/datasets", headers=headers,
                               json={"name": "schools", "data": {"J": 8, "y": [1.0, 2.0], "X": [[1, 2], [3, 4]]}})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True and body["name"] == "schools" and len(body["sha256"]) == 64
    assert body["fields"] == [
        {"name": "J", "shape": [], "dtype": "int64", "kind": "array"},
        {"name": "X", "shape": [2, 2], "dtype": "int64", "kind": "array"},
        {"name": "y", "shape": [2], "dtype": "float64", "kind": "array"},
    ]
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert api.client.get(f"/v1/datasets/{body['id']}", headers=headers).json()["sha256"] == body["sha256"]


def test_same_data_is_stored_once_per_tenant_whatever_the_format(api, headers):
    csv = b"x,y\n1.5,2.0\n3.5,4.0\n"
    first = api.client.post("/v1/datasets", headers=headers, files={"file": ("d.csv", csv, "text/csv")})
    assert first.status_code == 201, first.text
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([1.5, 3.5]), y=np.array([2.0, 4.0]))
    second = api.client.post("/v1/datasets", headers=headers,
                             files={"file": ("d.npz", buffer.getvalue(), "application/octet-stream")})
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"] and second.json()["created"] is False
    other_tenant = api.client.post("/v1/datasets", headers=api.tenant_headers(),
                                   files={"file": ("d.csv", csv, "text/csv")})
    assert other_tenant.status_code == 201 and other_tenant.json()["id"] != first.json()["id"]
    assert len(api.client.get("/v1/datasets", headers=headers).json()["items"]) == 1


def test_parquet_and_json_file_uploads(api, headers):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "k": [1, 2, 3]}), buffer)
    parquet = api.client.post("/v1/datasets", headers=headers,
                              files={"file": ("d.parquet", buffer.getvalue(), "application/octet-stream")})
    assert parquet.status_code == 201, parquet.text
    assert {f["name"]: f["dtype"] for f in parquet.json()["fields"]} == {"k": "int64", "x": "float64"}
    assert parquet.json()["format"] == "parquet"
    as_json = api.client.post("/v1/datasets", headers=headers,
                              files={"file": ("d.json", b'{"z": [1, 2, 3]}', "application/json")},
                              data={"name": "zed"})
    assert as_json.status_code == 201 and as_json.json()["name"] == "zed"


def test_npz_with_pickled_objects_is_refused(api, headers, problem):
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}], dtype=object))
    response = api.client.post("/v1/datasets", headers=headers,
                               files={"file": ("evil.npz", buffer.getvalue(), "application/x-npz")})
    problem(response, 422, "invalid-data")


def test_unreadable_files_are_problems(api, headers, problem):
    problem(api.client.post("/v1/datasets", headers=headers,
                            files={"file": ("d.npz", b"PK\x03\x04garbage", "application/x-npz")}), 422, "invalid-data")
    problem(api.client.post("/v1/datasets", headers=headers,
                            files={"file": ("d.csv", b"name,score\nann,x\n", "text/csv")}), 422, "invalid-data")
    problem(api.client.post("/v1/datasets", headers={**headers, "Content-Type": "application/xml"},
                            content=b"<a/>"), 415, "unsupported-media-type")
    problem(api.client.post("/v1/datasets", headers=headers, files={"other": ("d.csv", b"x\n1\n", "text/csv")}),
            422)


def test_job_from_a_dataset_id(api, headers, make_job):
    dataset = api.client.post("/v1/datasets", headers=headers,
                              json={"data": {"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.1]}}).json()
    body = make_job()
    body["data"] = {"dataset_id": dataset["id"]}
    job = api.client.post("/v1/jobs", headers=headers, json=body)
    assert job.status_code == 202, job.text
    assert job.json()["dataset_id"] == dataset["id"]


def test_catalog_lists_and_describes_models(api_sqlite):
    client = api_sqlite.client
    listing = client.get("/v1/catalog").json()["items"]
    names = {item["name"] for item in listing}
    assert {"eight_schools_noncentered", "linear_regression"} <= names
    entry = client.get("/v1/catalog/eight_schools_noncentered").json()
    assert "pyro.sample" in entry["source"] and entry["entry"] == "model"
    assert entry["example_data"]["J"] == 8
    assert entry["example_job"]["model"] == {"catalog": "eight_schools_noncentered"}
    missing = client.get("/v1/catalog/nope")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/catalog-entry-not-found")


def test_catalog_example_job_is_accepted_as_is(api_sqlite):
    client = api_sqlite.client
    example = client.get("/v1/catalog/linear_regression").json()["example_job"]
    example.setdefault("inference", {})["steps"] = 5
    response = client.post("/v1/validate", headers=api_sqlite.tenant_headers(), json=example)
    assert response.status_code == 200, response.text


def test_health_readiness_and_metrics(api):
    assert api.client.get("/healthz").json()["status"] == "ok"
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "database": True, "broker": True}
    headers = api.tenant_headers()
    api.client.get("/v1/jobs/does-not-exist", headers=headers)
    # Auth is required here: so is a key for /metrics (api.metrics_public is off).
    assert api.client.get("/metrics").status_code == 401
    text = api.client.get("/metrics", headers=headers).text
    assert 'vihub_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}' in text
    assert "vihub_http_request_duration_seconds_bucket" in text
    assert 'vihub_jobs{state="queued"}' in text


def test_readyz_reports_a_dead_broker(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'v.sqlite3'}"
    upgrade(url)
    settings = Settings(home=tmp_path, database_url=url, broker_url="redis://127.0.0.1:1/0", auth="disabled")
    settings.api = settings.api.model_copy(update=dict(warm_up_pool=False))
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not-ready", "database": True, "broker": False}


def test_openapi_declares_errors_for_every_route(api_sqlite):
    schema = api_sqlite.client.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert "500" in codes, (method, path)
            if path.startswith("/v1/jobs") or path.startswith("/v1/datasets") or path == "/v1/validate":
                assert "401" in codes, (method, path)
            if "{job_id}" in path:
                assert "404" in codes, (method, path)


def test_npz_scalar_fields_stay_scalars():
    """An NPZ with a 0-d integer (``J = 8``) keeps it a scalar, so it binds as a Python int."""
    import io

    import numpy as np

    from api.datasets.arrays import from_upload

    buffer = io.BytesIO()
    np.savez(buffer, J=np.array(8), y=np.arange(8.0))
    fields, fmt = from_upload(buffer.getvalue(), filename="data.npz", content_type="application/x-npz")
    assert fmt == "npz"
    assert fields["J"].shape == () and fields["J"].dtype == np.int64 and int(fields["J"]) == 8
    assert fields["y"].shape == (8,)
