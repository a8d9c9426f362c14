"""What submissions leave in the store (issue 15): quota slots, idempotency claims, the
``cancelled`` problem, the embedded default tenant. Both store backends, TestClient."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update


def _tenant_of(api: Any, headers: dict[str, str]) -> Any:
    from common.keys import hash_api_key
    from store.repositories.api_keys import ApiKeyRepository

    key = headers["Authorization"].split()[1]
    with api.session() as session:
        return ApiKeyRepository(session).find_active_by_hash(hash_api_key(key)).tenant_id


def _active_jobs(api: Any, tenant_id: str) -> int:
    from store.models import Tenant

    with api.session() as session:
        return session.get(Tenant, tenant_id).active_jobs


def test_cancelled_jobs_carry_a_cancelled_problem_and_give_their_slot_back(api, headers, make_job, quotas):
    tenant_id = _tenant_of(api, headers)
    ids = [api.client.post("/v1/jobs", json=make_job(), headers=headers).json()["id"]
           for _ in range(quotas["max_concurrent_jobs"])]
    assert _active_jobs(api, tenant_id) == quotas["max_concurrent_jobs"]
    assert api.client.post("/v1/jobs", json=make_job(), headers=headers).status_code == 429

    cancelled = api.client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers).json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["error"]["type"] == "https://vihub.dev/problems/cancelled"
    assert cancelled["error"]["title"] and cancelled["error"]["status"] == 409
    assert _active_jobs(api, tenant_id) == quotas["max_concurrent_jobs"] - 1
    assert api.client.post("/v1/jobs", json=make_job(), headers=headers).status_code == 202


def test_a_worker_cancel_without_an_error_is_stored_with_the_cancelled_problem(api, headers, make_job):
    from store.repositories.jobs import JobRepository

    job_id = api.client.post("/v1/jobs", json=make_job(), headers=headers).json()["id"]
    with api.session() as session:
        JobRepository(session).claim(job_id, "w1", lease_seconds=60)
    with api.session() as session:
        JobRepository(session).finish(job_id, "cancelled", worker_id="w1")
    error = api.client.get(f"/v1/jobs/{job_id}", headers=headers).json()["error"]
    assert error["type"].endswith("/cancelled")


def test_a_counter_left_high_is_recounted_at_the_limit(api, headers, make_job, quotas):
    """Jobs that ended without giving their slot back (e.g. under an older worker) do not
    lock the tenant out: a submit at the limit recounts from the jobs table."""
    from store.models import Job

    tenant_id = _tenant_of(api, headers)
    ids = [api.client.post("/v1/jobs", json=make_job(), headers=headers).json()["id"]
           for _ in range(quotas["max_concurrent_jobs"])]
    with api.session() as session:  # finished behind the repository's back
        session.execute(update(Job).where(Job.id.in_(ids)).values(state="succeeded"))
    assert _active_jobs(api, tenant_id) == quotas["max_concurrent_jobs"]
    assert api.client.post("/v1/jobs", json=make_job(), headers=headers).status_code == 202
    assert _active_jobs(api, tenant_id) == 1


def test_a_refused_submission_gives_its_idempotency_key_back(api, headers, make_job, problem):
    bad = make_job()
    bad["data"] = {"inline": {"x": [0.0, 1.0]}}  # y missing is fine; x too short is fine: make it fail
    bad["model"] = {"source": "import os\n"}
    problem(api.client.post("/v1/jobs", json=bad, headers={**headers, "Idempotency-Key": "k-bad"}), 422)
    # The key was not kept by the refused request: a good body may use it now.
    ok = api.client.post("/v1/jobs", json=make_job(), headers={**headers, "Idempotency-Key": "k-bad"})
    assert ok.status_code == 202, ok.text


def test_a_key_claimed_by_a_request_in_flight_is_409_request_in_progress(api, headers, make_job, problem):
    from api.jobs.schemas import JobCreate
    from api.jobs.service import body_fingerprint
    from store.repositories.idempotency import IdempotencyRepository

    tenant_id = _tenant_of(api, headers)
    body = make_job()
    fingerprint = body_fingerprint(JobCreate.model_validate(body))
    with api.session() as session:  # another request's fresh claim, no job yet
        assert IdempotencyRepository(session).claim(tenant_id, "k-busy", fingerprint, "someone-else")
    api.runtime.settings.api.idempotency_wait_s = 0.3
    try:
        busy = api.client.post("/v1/jobs", json=body, headers={**headers, "Idempotency-Key": "k-busy"})
        body409 = problem(busy, 409, "request-in-progress")
        assert int(busy.headers["Retry-After"]) > 0 and body409["detail"]
        other = api.client.post("/v1/jobs", json=make_job(steps=11), headers={**headers, "Idempotency-Key": "k-busy"})
        problem(other, 409, "idempotency-key-reused")
    finally:
        api.runtime.settings.api.idempotency_wait_s = 10.0


def test_embedded_default_tenant_is_committed_before_it_is_cached(tmp_path, make_job):
    """A first request that fails must not leave a cached id of a rolled-back tenant."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'v.sqlite3'}"
    upgrade(url)
    settings = Settings(home=tmp_path, database_url=url, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}",
                        auth="disabled")
    settings.api = settings.api.model_copy(update=dict(dry_run_time_limit_s=30.0))
    with TestClient(create_app(settings),
                    raise_server_exceptions=False) as client:
        first = client.post("/v1/jobs", json={**make_job(), "model": {"source": "import os\n"}})
        assert first.status_code == 422
        second = client.post("/v1/jobs", json=make_job())
        assert second.status_code == 202, second.text


def test_a_key_used_by_a_job_without_a_claim_record_replays_it(api, headers, make_job):
    """Jobs written by a previous release (no idempotency_keys row) still replay."""
    from api.jobs.schemas import JobCreate
    from api.jobs.service import body_fingerprint
    from store.repositories.jobs import JobRepository

    tenant_id = _tenant_of(api, headers)
    body = make_job()
    with api.session() as session:
        legacy = JobRepository(session).create(
            tenant_id=tenant_id, spec={"version": 1}, idempotency_key="legacy",
            request_fingerprint=body_fingerprint(JobCreate.model_validate(body)), queue="cpu").id
    for _ in range(2):
        replay = api.client.post("/v1/jobs", json=body, headers={**headers, "Idempotency-Key": "legacy"})
        assert replay.status_code == 200, replay.text
        assert replay.json()["id"] == legacy
