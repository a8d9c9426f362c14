"""Under load and faults: no hang, no 500, nothing held (issue 15), against real servers.

A uvicorn API in a subprocess (its real threadpool and DB pool, not TestClient's) on
Postgres, hit by concurrent httpx clients:

- 60 submits for one tenant at once, DB pool (40 + 20) larger than the threadpool (40):
  all answered 202/429 within 30 s, the API healthy afterwards (this hung for good when a
  tenant lock was held across the wait for a threadpool token);
- 50 submits with one Idempotency-Key: one job, zero 5xx;
- one key with different bodies at once: one job, the rest 409, zero 5xx;
- a private Postgres stopped and started mid-submission: only 202/503, zero 500, and
  ``/readyz`` failing meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from job_bodies import linear_job as job_body
from live_servers import ApiServer, PrivatePostgres, count_jobs, make_tenant_key

pytestmark = pytest.mark.integration

MAX_CONCURRENT_JOBS = 8
def server_env(database_url: str, home: Path, **extra: str) -> dict[str, str]:
    return {
        "VIHUB_DATABASE_URL": database_url,
        "VIHUB_BROKER_URL": f"sqla+sqlite:///{home / 'broker.sqlite3'}",
        "VIHUB_AUTH": "required",
        "VIHUB_API__DRY_RUN_WORKERS": "1",
        "VIHUB_LOG_LEVEL": "WARNING",
        **extra,
    }


def warm(server: ApiServer, key: str) -> None:
    # The first dry run in a fresh pool child imports torch and pyro: not part of a burst.
    response = httpx.post(server.base_url + "/v1/validate", json=job_body(), timeout=120,
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text


async def burst(base_url: str, requests: list[tuple[dict[str, Any], dict[str, str]]],
                timeout_s: float) -> list[int | str]:
    """POST /v1/jobs for each (body, headers) at once; a status code, or the exception
    name of a request that got no answer within ``timeout_s``."""
    limits = httpx.Limits(max_connections=len(requests) + 10, max_keepalive_connections=len(requests) + 10)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as client:
        async def one(body: dict[str, Any], headers: dict[str, str]) -> int | str:
            try:
                return (await client.post("/v1/jobs", json=body, headers=headers)).status_code
            except httpx.HTTPError as exc:
                return type(exc).__name__

        return list(await asyncio.gather(*(one(b, h) for b, h in requests)))


def _api(pg_url: str, home: Path, **pool: str) -> Iterator[tuple[ApiServer, str]]:
    from store.migrate import upgrade

    upgrade(pg_url)
    server = ApiServer(server_env(pg_url, home, VIHUB_QUOTAS__MAX_CONCURRENT_JOBS=str(MAX_CONCURRENT_JOBS),
                                  **pool), home)
    try:
        server.wait_ready()
        warm(server, make_tenant_key(pg_url)[1])
        yield server, pg_url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def loaded_api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    """The API with a DB pool (40 + 20) larger than the threadpool (40 threads)."""
    yield from _api(pg_url, tmp_path_factory.mktemp("api-big-pool"),
                    VIHUB_DB_POOL_SIZE="40", VIHUB_DB_MAX_OVERFLOW="20")


@pytest.fixture(scope="module")
def default_api(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ApiServer, str]]:
    """The API with the default DB pool (5 + 10), smaller than the threadpool."""
    yield from _api(pg_url, tmp_path_factory.mktemp("api-default-pool"))


def test_sixty_concurrent_submits_one_tenant_finish_and_leave_the_api_healthy(loaded_api) -> None:
    server, url = loaded_api
    tenant_id, key = make_tenant_key(url)
    headers = {"Authorization": f"Bearer {key}"}
    started = time.monotonic()
    statuses = asyncio.run(burst(server.base_url, [(job_body(), headers)] * 60, timeout_s=30))
    elapsed = time.monotonic() - started

    counts = Counter(statuses)
    assert set(counts) <= {202, 429}, (counts, server.log_tail())
    assert counts[202] == MAX_CONCURRENT_JOBS, counts  # the quota held: no more, no fewer
    assert elapsed < 30, elapsed
    assert count_jobs(url, tenant_id) == MAX_CONCURRENT_JOBS
    # Healthy afterwards: readiness, a read and a list answer at once.
    assert httpx.get(server.base_url + "/readyz", timeout=5).status_code == 200
    listed = httpx.get(server.base_url + "/v1/jobs", headers=headers, timeout=5)
    assert listed.status_code == 200 and len(listed.json()["items"]) == MAX_CONCURRENT_JOBS
    job_id = listed.json()["items"][0]["id"]
    assert httpx.get(server.base_url + f"/v1/jobs/{job_id}", headers=headers, timeout=5).status_code == 200


def test_fifty_concurrent_submits_with_one_idempotency_key_make_one_job(default_api) -> None:
    server, url = default_api
    tenant_id, key = make_tenant_key(url)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "same-key"}
    statuses = asyncio.run(burst(server.base_url, [(job_body(), headers)] * 50, timeout_s=60))

    counts = Counter(statuses)
    assert not [s for s in statuses if not isinstance(s, int) or s >= 500], (counts, server.log_tail())
    assert counts[202] == 1, counts
    # Everyone else got the job (200 replay), or was told to retry (409 in progress).
    assert set(counts) <= {200, 202, 409}, counts
    assert count_jobs(url, tenant_id) == 1
    again = httpx.post(server.base_url + "/v1/jobs", json=job_body(), headers=headers, timeout=30)
    assert again.status_code == 200


def test_one_idempotency_key_with_different_bodies_at_once_is_409_never_500(default_api) -> None:
    server, url = default_api
    tenant_id, key = make_tenant_key(url)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "contended"}
    requests = [(job_body(steps=10 + n), headers) for n in range(50)]
    statuses = asyncio.run(burst(server.base_url, requests, timeout_s=60))

    counts = Counter(statuses)
    assert not [s for s in statuses if not isinstance(s, int) or s >= 500], (counts, server.log_tail())
    assert counts[202] == 1 and counts[409] == 49, counts
    assert count_jobs(url, tenant_id) == 1


def test_postgres_restart_mid_submission_answers_only_202_or_503(tmp_path: Path) -> None:
    pg = PrivatePostgres()
    server = None
    try:
        pg.start()
        from store.migrate import upgrade

        upgrade(pg.url)
        server = ApiServer(server_env(pg.url, tmp_path, VIHUB_QUOTAS__MAX_CONCURRENT_JOBS="100000"), tmp_path)
        server.wait_ready()
        tenant_id, key = make_tenant_key(pg.url)
        warm(server, key)
        headers = {"Authorization": f"Bearer {key}"}

        statuses: list[int | str] = []
        unavailable: list[httpx.Response] = []
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=server.base_url, timeout=60) as http:
                while not stop.is_set():
                    try:
                        response = http.post("/v1/jobs", json=job_body(), headers=headers)
                        statuses.append(response.status_code)
                        if response.status_code == 503:
                            unavailable.append(response)
                    except httpx.HTTPError as exc:
                        statuses.append(type(exc).__name__)

        threads = [threading.Thread(target=client) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        pg.stop("fast")
        time.sleep(1)
        ready_during = httpx.get(server.base_url + "/readyz", timeout=30)
        time.sleep(3)
        pg.start()
        time.sleep(5)
        stop.set()
        for thread in threads:
            thread.join(timeout=90)

        counts = Counter(statuses)
        assert set(counts) <= {202, 503}, (counts, server.log_tail())
        assert counts[503] > 0 and counts[202] > 0, counts
        assert all(r.headers["content-type"].startswith("application/problem+json")
                   and int(r.headers["retry-after"]) > 0 for r in unavailable)
        assert ready_during.status_code == 503 and ready_during.json()["database"] is False
        wait_ok = httpx.get(server.base_url + "/readyz", timeout=30)
        assert wait_ok.status_code == 200
        after = httpx.post(server.base_url + "/v1/jobs", json=job_body(), headers=headers, timeout=30)
        assert after.status_code == 202, after.text
        # Every 202 is a job in the database (none was acknowledged and then lost).
        assert count_jobs(pg.url, tenant_id) == counts[202] + 1
    finally:
        if server is not None:
            server.stop()
        pg.destroy()
