"""Jobs over HTTP on both store backends: submit, idempotency, list/page tokens, cancel,
delete, results (JSON and binary), loss downsampling and the SSE stream.

No worker runs here: a test that needs a finished job plays the worker's part through
the store's repositories (claim, progress, finish, artifacts) with a real ``FitResult``
from ``inference.fit`` on a tiny model. The full cycle with real processes is in
``tests/e2e``.
"""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import numpy as np
import pytest

_FIT_CACHE: dict[str, Any] = {}


def tiny_fit(make_job) -> Any:
    """One real FitResult of the tiny linear model (computed once per session)."""
    if "result" not in _FIT_CACHE:
        import inference

        body = make_job(steps=30)
        spec = inference.JobSpec.model_validate({k: body[k] for k in ("model", "guide", "inference", "outputs")})
        data = {k: np.asarray(v) for k, v in body["data"]["inline"].items()}
        _FIT_CACHE["result"] = inference.fit(spec, data)
    return _FIT_CACHE["result"]


def play_worker(api, job_id: str, result: Any | None, losses: list[tuple[int, float]]) -> None:
    """Claim, record progress and finish a job as a worker would."""
    from store.models import ArtifactKind
    from store.repositories.artifacts import ArtifactRepository
    from store.repositories.jobs import JobRepository

    with api.session() as session:
        assert JobRepository(session).claim(job_id, "test-worker", lease_seconds=60) is not None
    with api.session() as session:
        JobRepository(session).record_progress(
            job_id, {"step": losses[-1][0], "steps": losses[-1][0], "loss": losses[-1][1]}, losses,
            worker_id="test-worker")
    if result is None:
        return
    with api.session() as session:
        artifacts = ArtifactRepository(session)
        artifacts.put(job_id, ArtifactKind.RESULT_JSON, json.dumps(result.to_json(), allow_nan=False).encode())
        artifacts.put(job_id, ArtifactKind.SAMPLES_NPZ, result.samples_npz())
        artifacts.put(job_id, ArtifactKind.LOG_PROBS_NPZ, result.log_probs_npz())
        artifacts.put(job_id, ArtifactKind.PARAMS_SAFETENSORS, result.params_safetensors())
        JobRepository(session).finish(job_id, "succeeded", worker_id="test-worker")


def submit(api, headers, body, **extra_headers) -> dict[str, Any]:
    response = api.client.post("/v1/jobs", headers={**headers, **extra_headers}, json=body)
    assert response.status_code == 202, response.text
    return response.json()


def test_submit_returns_202_with_the_job_and_publishes_after_commit(api, headers, make_job):
    body = make_job(labels={"team": "ml"})
    job = submit(api, headers, body)
    assert job["state"] == "queued"
    assert job["progress"] == {"step": 0, "steps": 10, "loss": None, "smoothed_loss": None,
                               "steps_per_s": None, "eta_s": None}
    assert job["created_at"] and job["started_at"] is None and job["finished_at"] is None
    assert job["error"] is None and job["labels"] == {"team": "ml"} and job["queue"] == "cpu"
    assert job["links"]["self"] == f"/v1/jobs/{job['id']}"
    # The row is committed (readable by a fresh request) and its id was published.
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=headers).json()["id"] == job["id"]
    assert job["id"] in api.published_job_ids()
    # Inline data became a content-addressed dataset the worker will read.
    dataset = api.client.get(f"/v1/datasets/{job['dataset_id']}", headers=headers).json()
    assert {f["name"] for f in dataset["fields"]} == {"x", "y"}


def test_device_cuda_goes_to_the_gpu_queue(api, headers, make_job):
    body = make_job()
    body["inference"]["device"] = "cuda"
    assert submit(api, headers, body)["queue"] == "gpu"


def test_catalog_job_without_data_uses_the_example_data(api, headers):
    job = submit(api, headers, {"model": {"catalog": "eight_schools_noncentered"}, "inference": {"steps": 5}})
    assert job["model"] == {"catalog": "eight_schools_noncentered"}
    assert job["dataset_id"]


def test_idempotency_key_same_body_same_job(api, headers, make_job, problem):
    body = make_job()
    first = submit(api, headers, body, **{"Idempotency-Key": "abc-1"})
    again = api.client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "abc-1"}, json=body)
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    # Published once only.
    assert api.published_job_ids().count(first["id"]) == 1
    other = make_job(steps=11)
    conflict = api.client.post("/v1/jobs", headers={**headers, "Idempotency-Key": "abc-1"}, json=other)
    body409 = problem(conflict, 409, "idempotency-key-reused")
    assert body409["job_id"] == first["id"]
    assert len(api.client.get("/v1/jobs", headers=headers).json()["items"]) == 1


def test_idempotency_keys_are_per_tenant(api, make_job):
    a, b = api.tenant_headers(), api.tenant_headers()
    body = make_job()
    ja = submit(api, a, body, **{"Idempotency-Key": "shared"})
    jb = submit(api, b, body, **{"Idempotency-Key": "shared"})
    assert ja["id"] != jb["id"]


def _insert_jobs(api, tenant_id: str, n: int, labels=None) -> list[str]:
    """Jobs inserted directly (no dry run) to page through many of them quickly."""
    from datetime import datetime, timedelta, timezone

    from store.repositories.jobs import JobRepository

    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = []
    with api.session() as session:
        for i in range(n):
            job = JobRepository(session).create(
                tenant_id=tenant_id, spec={"model": {"catalog": "linear_regression"}, "inference": {"steps": 10}},
                labels=(labels or {}) | {"i": str(i)}, created_at=base + timedelta(minutes=i // 2))
            ids.append(job.id)
    return ids


def test_list_pages_with_opaque_tokens_newest_first(api):
    tenant, key = api.new_tenant()
    headers = {"Authorization": f"Bearer {key}"}
    ids = _insert_jobs(api, tenant.id, 7)
    seen, token, pages = [], None, 0
    while True:
        params = {"page_size": 3} | ({"page_token": token} if token else {})
        page = api.client.get("/v1/jobs", headers=headers, params=params).json()
        seen += [j["id"] for j in page["items"]]
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
        assert "created" not in token  # opaque, not a readable cursor
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    created = [api.client.get(f"/v1/jobs/{i}", headers=headers).json()["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)


def test_list_endpoints_take_page_size_keep_limit_and_refuse_unknown_parameters(api, problem):
    tenant, key = api.new_tenant()
    headers = {"Authorization": f"Bearer {key}"}
    _insert_jobs(api, tenant.id, 3)
    assert len(api.client.get("/v1/jobs", headers=headers, params={"page_size": 2}).json()["items"]) == 2
    # `limit` is the deprecated name (released SDKs send it); page_size wins over it.
    assert len(api.client.get("/v1/jobs", headers=headers, params={"limit": 1}).json()["items"]) == 1
    both = api.client.get("/v1/jobs", headers=headers, params={"limit": 1, "page_size": 3}).json()
    assert len(both["items"]) == 3
    body = problem(api.client.get("/v1/jobs", headers=headers, params={"sate": "running"}), 400,
                   "unknown-query-parameter")
    assert body["errors"] == [{"parameter": "sate", "in": "query", "detail": "unknown query parameter"}]
    assert "page_size" in body["detail"]
    problem(api.client.get("/v1/datasets", headers=headers, params={"pagesize": 2}), 400, "unknown-query-parameter")
    problem(api.client.get("/v1/catalog", params={"q": "x"}), 400, "unknown-query-parameter")
    assert api.client.get("/v1/datasets", headers=headers, params={"page_size": 2}).status_code == 200
    parameters = {p["name"]: p for p in api.client.get("/openapi.json").json()["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert parameters["limit"].get("deprecated") is True and "page_size" in parameters


def test_list_filters_state_label_and_created_range(api):
    tenant, key = api.new_tenant()
    headers = {"Authorization": f"Bearer {key}"}
    ids = _insert_jobs(api, tenant.id, 4, labels={"team": "a"})
    api.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers)
    states = api.client.get("/v1/jobs", headers=headers, params={"state": "cancelled"}).json()["items"]
    assert [j["id"] for j in states] == [ids[0]]
    both = api.client.get("/v1/jobs", headers=headers, params=[("state", "cancelled"), ("state", "queued")]).json()
    assert len(both["items"]) == 4
    labelled = api.client.get("/v1/jobs", headers=headers, params={"label": "i=2"}).json()["items"]
    assert [j["id"] for j in labelled] == [ids[2]]
    assert api.client.get("/v1/jobs", headers=headers, params={"label": "team=b"}).json()["items"] == []
    window = api.client.get("/v1/jobs", headers=headers, params={
        "created_after": "2026-01-01T00:00:30Z", "created_before": "2026-01-01T00:01:30Z"}).json()["items"]
    assert sorted(j["id"] for j in window) == sorted(ids[2:4])


def test_cancel_a_queued_job_then_delete_it(api, headers, make_job, problem):
    job = submit(api, headers, make_job())
    cancelled = api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert cancelled.status_code == 202
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["finished_at"]
    # cancelling twice is harmless
    assert api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).json()["state"] == "cancelled"
    problem(api.client.get(f"/v1/jobs/{job['id']}/params", headers=headers), 409, "results-not-ready")
    assert api.client.delete(f"/v1/jobs/{job['id']}", headers=headers).status_code == 204
    problem(api.client.get(f"/v1/jobs/{job['id']}", headers=headers), 404, "job-not-found")
    assert api.client.get("/v1/jobs", headers=headers).json()["items"] == []


def test_delete_a_running_job_requests_cancel(api, headers, make_job):
    from store.repositories.jobs import JobRepository

    job = submit(api, headers, make_job())
    play_worker(api, job["id"], None, [(1, 5.0)])
    assert api.client.delete(f"/v1/jobs/{job['id']}", headers=headers).status_code == 204
    with api.session() as session:
        assert JobRepository(session).is_cancel_requested(job["id"])


def test_cancel_a_finished_job_is_409(api, headers, make_job, problem):
    job = submit(api, headers, make_job())
    play_worker(api, job["id"], tiny_fit(make_job), [(1, 3.0), (2, 2.0)])
    problem(api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers), 409, "job-already-finished")


def test_results_are_409_until_the_job_succeeds(api, headers, make_job, problem):
    job = submit(api, headers, make_job())
    for path in ("params", "samples", "log-probs", "diagnostics", "summary"):
        body = problem(api.client.get(f"/v1/jobs/{job['id']}/{path}", headers=headers), 409, "results-not-ready")
        assert body["state"] == "queued"
    # The loss curve is readable (empty) at any time.
    assert api.client.get(f"/v1/jobs/{job['id']}/loss", headers=headers).json()["loss"] == []


def test_results_json_and_binary_forms(api, headers, make_job):
    result = tiny_fit(make_job)
    job = submit(api, headers, make_job())
    losses = [(i + 1, float(v)) for i, v in enumerate(result.loss)]
    play_worker(api, job["id"], result, losses)
    base = f"/v1/jobs/{job['id']}"
    got = api.client.get(base, headers=headers).json()
    assert got["state"] == "succeeded" and got["finished_at"]

    params = api.client.get(f"{base}/params", headers=headers).json()
    assert set(params["guide_params"]) == set(result.guide_params)
    samples = api.client.get(f"{base}/samples", headers=headers).json()["samples"]
    assert set(samples) >= {"w", "b"} and len(samples["w"]) == 10
    summary = api.client.get(f"{base}/summary", headers=headers).json()["summary"]
    assert summary["w"]["mean"] == pytest.approx(result.summary["w"]["mean"])
    log_probs = api.client.get(f"{base}/log-probs", headers=headers).json()["log_probs"]
    assert "log_joint" in log_probs
    diagnostics = api.client.get(f"{base}/diagnostics", headers=headers).json()
    assert "k_hat" in diagnostics["diagnostics"] and diagnostics["meta"]

    npz = api.client.get(f"{base}/samples?format=npz", headers=headers)
    assert npz.headers["content-type"] == "application/x-npz"
    assert np.load(io.BytesIO(npz.content))["w"].shape == (10,)
    by_accept = api.client.get(f"{base}/samples", headers={**headers, "Accept": "application/x-npz"})
    assert by_accept.content == npz.content
    from safetensors.numpy import load as load_safetensors

    st = api.client.get(f"{base}/params", headers={**headers, "Accept": "application/octet-stream"})
    assert st.headers["content-type"] == "application/octet-stream"
    assert load_safetensors(st.content)
    st_samples = load_safetensors(api.client.get(f"{base}/log-probs?format=safetensors", headers=headers).content)
    assert "log_joint" in st_samples
    nc = api.client.get(f"{base}/samples?format=netcdf", headers=headers)
    assert nc.headers["content-type"] == "application/x-netcdf" and nc.content[:4] == b"\x89HDF"
    loss_npz = np.load(io.BytesIO(api.client.get(f"{base}/loss?format=npz", headers=headers).content))
    assert loss_npz["loss"].shape == (30,)


def test_not_acceptable_format(api, headers, make_job, problem):
    job = submit(api, headers, make_job())
    problem(api.client.get(f"/v1/jobs/{job['id']}/loss?format=netcdf", headers=headers), 406, "not-acceptable")
    problem(api.client.get(f"/v1/jobs/{job['id']}/loss", headers={**headers, "Accept": "image/png"}), 406)


def test_gzip_when_asked(api, headers, make_job):
    job = submit(api, headers, make_job())
    play_worker(api, job["id"], None, [(step, 1.0 / step) for step in range(1, 501)])
    response = api.client.get(f"/v1/jobs/{job['id']}/loss", headers={**headers, "Accept-Encoding": "gzip"})
    assert response.headers.get("content-encoding") == "gzip"
    assert len(response.json()["loss"]) == 500  # httpx decodes it
    plain = api.client.get(f"/v1/jobs/{job['id']}/loss", headers={**headers, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


def test_loss_downsampling_keeps_first_and_last(api, headers, make_job):
    job = submit(api, headers, make_job())
    losses = [(step, 1000.0 / step) for step in range(1, 1001)]
    play_worker(api, job["id"], None, losses)
    body = api.client.get(f"/v1/jobs/{job['id']}/loss", headers=headers, params={"max_points": 50}).json()
    assert body["num_points"] == 1000
    assert len(body["steps"]) == len(body["loss"]) == 50
    assert body["steps"][0] == 1 and body["steps"][-1] == 1000
    assert body["loss"][-1] == pytest.approx(1.0)
    assert body["steps"] == sorted(body["steps"])
    full = api.client.get(f"/v1/jobs/{job['id']}/loss", headers=headers).json()
    assert len(full["steps"]) == 1000


def test_loss_includes_elbo_terms_and_grad_norms_downsampled(api, headers, make_job):
    result = tiny_fit(make_job)
    job = submit(api, headers, make_job())
    play_worker(api, job["id"], result, [(i + 1, float(v)) for i, v in enumerate(result.loss)])
    body = api.client.get(f"/v1/jobs/{job['id']}/loss", headers=headers, params={"max_points": 2}).json()
    assert body["steps"] == [1, 30]
    assert isinstance(body["elbo_terms"], list) and body["elbo_terms"]
    assert body["elbo_terms"][-1]["step"] == result.elbo_terms[-1]["step"]
    assert isinstance(body["grad_norms"], list)


def _read_events(response) -> list[dict[str, Any]]:
    events, current = [], {}
    for line in response.iter_lines():
        if not line:
            if current:
                events.append(current)
            current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    if current:
        events.append(current)
    return events


def test_sse_streams_progress_until_the_end(api, headers, make_job):
    result = tiny_fit(make_job)
    job = submit(api, headers, make_job())

    def worker() -> None:
        time.sleep(0.4)
        play_worker(api, job["id"], None, [(5, 3.0)])
        time.sleep(0.4)
        from store.repositories.jobs import JobRepository

        with api.session() as session:
            JobRepository(session).record_progress(job["id"], {"step": 10, "steps": 10, "loss": 1.0},
                                                   [(10, 1.0)], worker_id="test-worker")
        time.sleep(0.3)
        with api.session() as session:
            JobRepository(session).finish(job["id"], "succeeded", worker_id="test-worker")

    thread = threading.Thread(target=worker)
    thread.start()
    with api.client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [e for e in _read_events(response) if "event" in e]
    thread.join()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "state" and kinds[-1] == "end"
    states = [json.loads(e["data"])["state"] for e in events if e["event"] == "state"]
    assert states == ["queued", "running", "succeeded"]
    steps = [int(e["id"]) for e in events if e["event"] == "progress"]
    assert steps == [5, 10]
    assert json.loads(events[-1]["data"])["state"] == "succeeded"
    del result


def test_sse_honours_last_event_id(api, headers, make_job):
    job = submit(api, headers, make_job())
    play_worker(api, job["id"], None, [(7, 2.0)])
    from store.repositories.jobs import JobRepository

    with api.session() as session:
        JobRepository(session).finish(job["id"], "failed", error={"type": "x", "title": "boom", "status": 500},
                                      worker_id="test-worker")
    url = f"/v1/jobs/{job['id']}/events"
    with api.client.stream("GET", url, headers=headers) as response:
        fresh = [e for e in _read_events(response) if "event" in e]
    assert [e["event"] for e in fresh] == ["state", "progress", "end"]
    with api.client.stream("GET", url, headers={**headers, "Last-Event-ID": "7"}) as response:
        resumed = [e for e in _read_events(response) if "event" in e]
    assert [e["event"] for e in resumed] == ["state", "end"]
    assert json.loads(resumed[-1]["data"])["error"]["title"] == "boom"


def test_validate_returns_the_report_without_a_job(api, headers, make_job):
    response = api.client.post("/v1/validate", headers=headers, json=make_job())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True and body["report"]["ok"] is True
    assert set(body["report"]["info"]["latent_sites"]) == {"w", "b"}
    assert api.client.get("/v1/jobs", headers=headers).json()["items"] == []


def test_predict_for_new_data(api, headers, make_job):
    result = tiny_fit(make_job)
    job = submit(api, headers, make_job())
    play_worker(api, job["id"], result, [(i + 1, float(v)) for i, v in enumerate(result.loss)])
    response = api.client.post(f"/v1/jobs/{job['id']}/predict", headers=headers,
                               json={"data": {"inline": {"x": [10.0, 20.0]}}, "num_samples": 7})
    assert response.status_code == 200, response.text
    obs = np.asarray(response.json()["predictive"]["obs"])
    assert obs.shape == (7, 2)


def test_embedded_mode_needs_no_key(api_embedded, make_job):
    client = api_embedded.client
    job = client.post("/v1/jobs", json=make_job())
    assert job.status_code == 202, job.text
    assert client.get(f"/v1/jobs/{job.json()['id']}").json()["state"] == "queued"
    assert any(j["id"] == job.json()["id"] for j in client.get("/v1/jobs").json()["items"])


def test_a_broker_outage_delays_but_never_loses_a_job(tmp_path, make_job):
    """Publish fails after the commit: the job stays queued (published_at unset) for the
    sweeper to republish, and the client still gets its 202."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade
    from store.models import Job

    url = f"sqlite:///{tmp_path / 'v.sqlite3'}"
    upgrade(url)
    settings = Settings(home=tmp_path, database_url=url, broker_url="redis://127.0.0.1:1/0", auth="disabled")
    settings.api = settings.api.model_copy(update=dict(dry_run_time_limit_s=30.0))
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/jobs", json=make_job())
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert client.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
        with client.app.state.runtime.sessionmaker() as session:
            job = session.get(Job, job_id)
            assert job.published_at is None and job.queued_at is not None
        metrics = client.get("/metrics").text
        assert 'vihub_jobs_published_total{outcome="failed"} 1.0' in metrics



def test_job_resource_carries_its_spec(api, headers, make_job):
    body = make_job()
    job = submit(api, headers, body)
    fetched = api.client.get(f"/v1/jobs/{job['id']}", headers=headers).json()
    assert fetched["spec"]["inference"]["steps"] == body["inference"]["steps"]
    assert fetched["spec"]["guide"] == job["spec"]["guide"] and "auto" in fetched["spec"]["guide"]
    assert "data" not in fetched["spec"]


def test_a_resubmission_with_more_steps_is_not_traced_again(api, headers, make_job):
    """The dry-run cache: same tenant, model, guide and data shapes -> no second trial run;
    another tenant, another model or other data shapes -> traced again."""
    runtime = api.runtime
    calls = []
    original = runtime.dry_runs.run

    def counting(fn, *args, **kwargs):
        calls.append(fn.__name__)
        return original(fn, *args, **kwargs)

    runtime.dry_runs.run = counting
    try:
        body = make_job(steps=11)
        body["model"]["source"] += "\n# cache probe\n"
        assert api.client.post("/v1/jobs", headers=headers, json=body).status_code == 202
        assert len(calls) == 1
        again = dict(body, inference={**body["inference"], "steps": 12, "seed": 7})
        assert api.client.post("/v1/jobs", headers=headers, json=again).status_code == 202
        assert len(calls) == 1  # cached
        _, other_key = api.new_tenant()
        assert api.client.post("/v1/jobs", headers={"Authorization": f"Bearer {other_key}"},
                               json=body).status_code == 202
        assert len(calls) == 2  # per tenant
        reshaped = dict(body, data={"inline": {k: list(v) * 2 if isinstance(v, list) else v
                                               for k, v in body["data"]["inline"].items()}})
        assert api.client.post("/v1/jobs", headers=headers, json=reshaped).status_code == 202
        assert len(calls) == 3  # other data shapes
    finally:
        runtime.dry_runs.run = original
