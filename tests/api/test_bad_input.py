"""Every bad input of issue #4 gets the right 4xx problem+json and leaves no job behind.

Run on both store backends (SQLite and Postgres). After each refusal the tenant has no
job and nothing was published to the broker: a refused submission is never queued.
"""

from __future__ import annotations

import copy
import dataclasses
import io

import numpy as np
import pytest


def assert_nothing_queued(api, headers, before_published):
    listing = api.client.get("/v1/jobs", headers=headers)
    assert listing.status_code == 200
    assert listing.json()["items"] == []
    assert len(api.published_job_ids()) == before_published


def test_malformed_json_is_400(api, headers, problem):
    before = len(api.published_job_ids())
    response = api.client.post("/v1/jobs", headers={**headers, "Content-Type": "application/json"},
                               content=b'{"model": {"catalog": ')
    body = problem(response, 400, "malformed-request")
    assert "not valid JSON" in body["detail"]
    assert_nothing_queued(api, headers, before)


def test_unknown_fields_point_at_the_member(api, headers, problem, make_job):
    before = len(api.published_job_ids())
    job = make_job()
    job["inference"]["stepz"] = 10
    job["colour"] = "blue"
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422, "validation-error")
    pointers = {e["pointer"]: e["detail"] for e in body["errors"]}
    assert pointers == {"/inference/stepz": "unknown field", "/colour": "unknown field"}
    assert_nothing_queued(api, headers, before)


def test_invalid_value_points_at_the_field(api, headers, problem, make_job):
    job = make_job()
    job["inference"]["steps"] = 0
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422, "validation-error")
    assert body["errors"][0]["pointer"] == "/inference/steps"


def test_model_outside_the_language_names_line_and_column(api, headers, problem, make_job):
    before = len(api.published_job_ids())
    job = make_job()
    job["model"]["source"] = "import os\n\ndef model(x, y=None):\n    return os.getcwd()\n"
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422, "forbidden-construct")
    assert body["line"] == 1
    assert body["col"] is not None
    assert body["pointer"] == "/model/source"
    assert "os" in body["detail"]
    assert_nothing_queued(api, headers, before)


def test_dunder_access_is_refused_at_its_line(api, headers, problem, make_job):
    job = make_job()
    job["model"]["source"] = "def model(x, y=None):\n    k = x.__class__\n"
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422, "forbidden-construct")
    assert body["line"] == 2


def test_data_missing_a_field_points_at_the_data(api, headers, problem, make_job):
    before = len(api.published_job_ids())
    job = make_job()
    del job["data"]["inline"]["x"]
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422, "data-binding")
    assert body["pointer"] == "/data/inline/x"
    assert "'x'" in body["detail"]
    assert_nothing_queued(api, headers, before)


def test_wrong_shaped_array_is_refused_by_the_dry_run(api, headers, problem, make_job):
    before = len(api.published_job_ids())
    job = make_job()
    job["data"]["inline"]["y"] = [1.0, 2.0, 3.0]  # x has 4 points
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422, "validation-failed")
    assert body["report"]["ok"] is False
    assert body["report"]["errors"]
    assert_nothing_queued(api, headers, before)


def test_ragged_array_points_at_the_field(api, headers, problem, make_job):
    job = make_job()
    job["data"]["inline"]["x"] = [[1.0, 2.0], [3.0]]
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422, "invalid-data")
    assert body["pointer"] == "/data/inline/x"


def test_nan_in_data_is_refused(api, headers, problem):
    before = len(api.published_job_ids())
    raw = (
        b'{"model": {"catalog": "linear_regression"}, "inference": {"steps": 5},'
        b' "data": {"inline": {"x": [1.0, NaN, 2.0], "y": [1.0, 2.0, 3.0]}}}'
    )
    response = api.client.post("/v1/jobs", headers={**headers, "Content-Type": "application/json"}, content=raw)
    body = problem(response, 422, "invalid-data")
    assert body["pointer"] == "/data/inline/x"
    assert body["index"] == [1]
    assert_nothing_queued(api, headers, before)


def test_nan_in_uploaded_csv_is_refused(api, headers, problem):
    csv = b"x,y\n1.0,2.0\nnan,3.0\n"
    response = api.client.post("/v1/datasets", headers=headers, files={"file": ("d.csv", csv, "text/csv")})
    body = problem(response, 422, "invalid-data")
    assert body["pointer"] == "/file/x"


def test_oversized_upload_is_413(api, headers, problem, quotas):
    big = np.zeros(quotas["max_upload_bytes"] // 8 + 10)
    buffer = io.BytesIO()
    np.savez(buffer, x=big)
    response = api.client.post("/v1/datasets", headers=headers,
                               files={"file": ("big.npz", buffer.getvalue(), "application/x-npz")})
    body = problem(response, 413, "payload-too-large")
    assert body["limit"] == quotas["max_upload_bytes"]
    assert api.client.get("/v1/datasets", headers=headers).json()["items"] == []


def test_oversized_chunked_body_is_413_while_streaming(api, headers, problem):
    def chunks():
        for _ in range(40):
            yield b"x" * 10_000

    response = api.client.post("/v1/datasets", headers={**headers, "Content-Type": "text/csv"}, content=chunks())
    problem(response, 413, "payload-too-large")


def test_unknown_job_id_is_404(api, headers, problem):
    for path in ("", "/params", "/loss", "/events", "/summary"):
        response = api.client.get(f"/v1/jobs/00000000-0000-0000-0000-000000000000{path}", headers=headers)
        problem(response, 404, "job-not-found")
    problem(api.client.post("/v1/jobs/nope/cancel", headers=headers), 404, "job-not-found")
    problem(api.client.delete("/v1/jobs/nope", headers=headers), 404, "job-not-found")


def test_another_tenants_job_is_404(api, problem, make_job):
    owner = api.tenant_headers()
    intruder = api.tenant_headers()
    created = api.client.post("/v1/jobs", headers=owner, json=make_job())
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    for method, path in (("GET", ""), ("GET", "/params"), ("GET", "/loss"), ("POST", "/cancel"), ("DELETE", "")):
        response = api.client.request(method, f"/v1/jobs/{job_id}{path}", headers=intruder)
        problem(response, 404, "job-not-found")
    assert api.client.get("/v1/jobs", headers=intruder).json()["items"] == []
    # The owner's job is untouched by the intruder's attempts.
    assert api.client.get(f"/v1/jobs/{job_id}", headers=owner).json()["state"] == "queued"


def test_another_tenants_dataset_is_404(api, problem, make_job):
    owner, intruder = api.tenant_headers(), api.tenant_headers()
    dataset = api.client.post("/v1/datasets", headers=owner, json={"data": {"x": [1.0, 2.0]}}).json()
    problem(api.client.get(f"/v1/datasets/{dataset['id']}", headers=intruder), 404, "dataset-not-found")
    job = make_job()
    job["data"] = {"dataset_id": dataset["id"]}
    problem(api.client.post("/v1/jobs", headers=intruder, json=job), 404, "dataset-not-found")


@pytest.mark.parametrize("auth", [None, {"Authorization": "Bearer vihub_not-a-key"}, {"X-API-Key": "wrong"},
                                  {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_missing_or_wrong_api_key_is_401(api, problem, auth, make_job):
    response = api.client.post("/v1/jobs", headers=auth or {}, json=make_job())
    body = problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "key" in body["detail"]
    problem(api.client.get("/v1/jobs", headers=auth or {}), 401, "unauthorized")


def test_x_api_key_header_authenticates(api):
    _, key = api.new_tenant()
    assert api.client.get("/v1/jobs", headers={"X-API-Key": key}).status_code == 200


def test_step_quota_is_403_with_pointer(api, headers, problem, make_job, quotas):
    before = len(api.published_job_ids())
    body = problem(api.client.post("/v1/jobs", headers=headers, json=make_job(steps=quotas["max_steps"] + 1)),
                   403, "quota-exceeded")
    assert body["pointer"] == "/inference/steps"
    assert body["limit"] == quotas["max_steps"]
    assert_nothing_queued(api, headers, before)


def test_thread_quota_is_403_with_pointer(api, headers, problem, make_job):
    from common.settings import QuotaSettings

    limit = QuotaSettings().max_threads_per_job
    job = make_job()
    job["inference"]["num_threads"] = limit + 1
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 403, "quota-exceeded")
    assert body["pointer"] == "/inference/num_threads" and body["limit"] == limit


def test_concurrent_job_quota_is_429_with_retry_after(api, headers, problem, make_job, quotas):
    for i in range(quotas["max_concurrent_jobs"]):
        assert api.client.post("/v1/jobs", headers=headers, json=make_job(steps=10 + i)).status_code == 202
    response = api.client.post("/v1/jobs", headers=headers, json=make_job(steps=99))
    problem(response, 429, "too-many-concurrent-jobs")
    assert int(response.headers["retry-after"]) > 0
    assert len(api.client.get("/v1/jobs", headers=headers).json()["items"]) == quotas["max_concurrent_jobs"]


def test_dataset_bytes_quota_is_403(api, headers, problem, quotas):
    too_many = [0.5] * (quotas["max_dataset_bytes"] // 8 + 1)
    body = problem(api.client.post("/v1/datasets", headers=headers, json={"data": {"x": too_many}}),
                   403, "quota-exceeded")
    assert body["limit"] == quotas["max_dataset_bytes"]


def test_unknown_route_and_method_are_problems(api, headers, problem):
    problem(api.client.get("/v1/nothing-here", headers=headers), 404, "not-found")
    problem(api.client.put("/v1/jobs", headers=headers), 405, "method-not-allowed")


def test_unknown_catalog_model_is_422(api, headers, problem):
    body = problem(api.client.post("/v1/jobs", headers=headers, json={"model": {"catalog": "no_such_model"}}),
                   422, "unknown-catalog-model")
    assert body["pointer"] == "/model/catalog"


def test_bad_page_token_and_query_values(api, headers, problem):
    problem(api.client.get("/v1/jobs?page_token=garbage!", headers=headers), 400, "invalid-page-token")
    body = problem(api.client.get("/v1/jobs?limit=0", headers=headers), 422, "validation-error")
    assert body["errors"][0]["parameter"] == "limit"
    problem(api.client.get("/v1/jobs?state=sleeping", headers=headers), 422, "validation-error")


def test_unexpected_errors_are_opaque_500s(api_sqlite, problem, monkeypatch):
    from api.catalog import service

    def explode():
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(service, "list_entries", explode)
    response = api_sqlite.client.get("/v1/catalog")
    body = problem(response, 500, "internal-error")
    assert "secret" not in response.text and "passwd" not in response.text
    assert "Traceback" not in response.text
    assert body["detail"]


def test_body_copy_is_not_mutated(api, headers, make_job):
    # The same body object can be sent twice (idempotent clients reuse it).
    job = make_job()
    snapshot = copy.deepcopy(job)
    api.client.post("/v1/jobs", headers=headers, json=job)
    assert job == snapshot


def test_guide_outside_the_language_points_at_the_guide(api, headers, problem, make_job):
    job = make_job()
    job["guide"] = {"source": "def guide(x, y=None):\n    return open('/etc/passwd')\n"}
    body = problem(api.client.post("/v1/jobs", headers=headers, json=job), 422)
    assert body["pointer"] == "/guide/source"
    assert body["line"] == 2


def test_operator_language_limits_apply_at_submission(api_embedded, problem, make_job):
    settings = api_embedded.runtime.settings
    saved = settings.limits
    settings.limits = dataclasses.replace(saved, max_source_bytes=100)
    try:
        body = problem(api_embedded.client.post("/v1/jobs", json=make_job()), 422, "limit-exceeded")
        assert body["pointer"] == "/model/source"
    finally:
        settings.limits = saved
    assert api_embedded.client.post("/v1/validate", json=make_job()).status_code == 200
