"""The full cycle through HTTP, as a user does it, with real processes.

uvicorn (``api.app:create_app --factory``) and a separate Celery worker process run the
eight-schools catalog job; the test polls until ``succeeded`` and checks what it
downloads: params, the loss curve, samples, log-probs and the summary (posterior mean of
``mu`` near 4.4). Two deployments:

- ``production``: Postgres store, Redis broker, ``VIHUB_AUTH=required`` with an API key;
- ``embedded``: what ``vihub up`` runs — SQLite under ``VIHUB_HOME``, kombu's SQLAlchemy
  broker on a file, no server, no key.

Both run (never skip) under ``CI=true``: the fixtures fail when Postgres/Redis are down.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.e2e

# Enough for AutoNormal on eight schools to settle within about +-1 of the posterior
# mean of mu (4.4) in a few seconds; fixed seed.
EIGHT_SCHOOLS_JOB = {
    "model": {"catalog": "eight_schools_noncentered"},
    "guide": {"auto": "AutoNormal"},
    "inference": {"optimizer": {"name": "Adam", "lr": 0.05}, "steps": 1500, "seed": 0,
                  "progress_every_steps": 100, "progress_every_s": 0.5},
    "outputs": {"num_samples": 1000, "log_prob_draws": 200, "elbo_terms_every": 250,
                "grad_norms_every": 250},
    "labels": {"suite": "e2e"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(proc)
    raise TimeoutError(f"uvicorn not up:\n{log_path.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(params=["production", "embedded"])
def deployment(request, tmp_path, make_settings_env):
    """(env, headers) of a deployment; the store is migrated, a key made when auth is on."""
    home = tmp_path / "home"
    if request.param == "production":
        database_url = request.getfixturevalue("pg_url")
        broker_url = request.getfixturevalue("redis_url")
        env = make_settings_env(database_url, broker_url, home=home, auth="required")
    else:
        home.mkdir()
        database_url = f"sqlite:///{home / 'vihub.sqlite3'}"
        broker_url = f"sqla+sqlite:///{home / 'broker.sqlite3'}"
        env = make_settings_env(database_url, broker_url, home=home)
    from store.migrate import upgrade

    upgrade(database_url)
    headers = {}
    if request.param == "production":
        from sqlalchemy.orm import sessionmaker

        from store.db import make_engine
        from store.repositories import ApiKeyRepository, TenantRepository
        from store.security import display_prefix, generate_api_key, hash_api_key

        engine = make_engine(database_url)
        key = generate_api_key()
        with sessionmaker(bind=engine).begin() as session:
            tenant = TenantRepository(session).create(f"e2e-{os.getpid()}-{time.time_ns()}")
            ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
        engine.dispose()
        headers = {"Authorization": f"Bearer {key}"}
    return request.param, env, headers


def test_eight_schools_full_cycle(deployment, celery_worker_proc, tmp_path):
    name, env, headers = deployment
    worker = celery_worker_proc(env, queues="cpu", pool="prefork", concurrency=1)
    api, base = start_api(env, tmp_path / "uvicorn.log")
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            run_full_cycle(client, name)
    finally:
        stop(api)
        assert worker.alive(), worker.log()[-3000:]


def run_full_cycle(client: httpx.Client, name: str) -> None:
    if name == "production":
        assert client.get("/v1/jobs", headers={"Authorization": ""}).status_code == 401
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text

    submitted = client.post("/v1/jobs", json=EIGHT_SCHOOLS_JOB, headers={"Idempotency-Key": f"e2e-{name}"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]

    job = poll_until_final(client, job_id, timeout=300)
    assert job["state"] == "succeeded", job
    assert job["progress"]["step"] == job["progress"]["steps"] == 1500
    assert job["started_at"] and job["finished_at"] and job["error"] is None

    params = client.get(f"/v1/jobs/{job_id}/params").json()
    assert "AutoNormal.locs.mu" in params["guide_params"]
    mu_loc = float(np.asarray(params["guide_params"]["AutoNormal.locs.mu"]["value"]))
    assert abs(mu_loc - 4.4) < 1.5, mu_loc

    loss = client.get(f"/v1/jobs/{job_id}/loss", params={"max_points": 100}).json()
    assert loss["num_points"] == 1500
    assert len(loss["steps"]) == 100 and loss["steps"][0] == 1 and loss["steps"][-1] == 1500
    assert np.mean(loss["loss"][-10:]) < np.mean(loss["loss"][:10])  # it learned
    assert loss["elbo_terms"] and "kl" in loss["elbo_terms"][-1]
    assert loss["grad_norms"]

    samples = client.get(f"/v1/jobs/{job_id}/samples").json()["samples"]
    assert len(samples["mu"]) == 1000 and np.asarray(samples["theta"]).shape == (1000, 8)
    npz = np.load(io.BytesIO(client.get(f"/v1/jobs/{job_id}/samples", params={"format": "npz"}).content))
    assert npz["mu"].shape == (1000,)
    assert abs(float(np.mean(npz["mu"])) - 4.4) < 1.5

    log_probs = client.get(f"/v1/jobs/{job_id}/log-probs").json()["log_probs"]
    assert len(log_probs["log_joint"]) == 200
    assert np.all(np.isfinite(np.asarray(log_probs["log_joint"], dtype=float)))

    summary = client.get(f"/v1/jobs/{job_id}/summary").json()["summary"]
    assert abs(summary["mu"]["mean"] - 4.4) < 1.5, summary["mu"]
    assert summary["mu"]["q05"] < summary["mu"]["q50"] < summary["mu"]["q95"]
    assert summary["tau"]["mean"] > 0

    diagnostics = client.get(f"/v1/jobs/{job_id}/diagnostics").json()
    assert diagnostics["diagnostics"]["k_hat"] is not None
    netcdf = client.get(f"/v1/jobs/{job_id}/samples", headers={"Accept": "application/x-netcdf"})
    assert netcdf.status_code == 200 and netcdf.content[:4] == b"\x89HDF"

    listed = client.get("/v1/jobs", params={"label": "suite=e2e", "state": "succeeded"}).json()["items"]
    assert job_id in [j["id"] for j in listed]


def poll_until_final(client: httpx.Client, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    pytest.fail(f"job {job_id} not final after {timeout}s: {job}")
