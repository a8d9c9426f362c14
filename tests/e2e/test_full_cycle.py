"""The full cycle through HTTP, as a user does it, with real processes.

uvicorn (``api.app:create_app --factory``) and a separate Celery worker process run the
eight-schools catalog job; the test polls until ``succeeded`` and checks what it
downloads: params, the loss curve, samples, log-probs and the summary (posterior mean of
``mu`` near 4.4). Two deployments:

- ``production``: Postgres store, Redis broker, ``VIHUB_AUTH=required`` with an API key;
- ``embedded``: ``vihub up`` itself — SQLite under ``VIHUB_HOME``, kombu's SQLAlchemy
  broker on a file, its own Celery worker process and sweeper, no server, no key.

Both run (never skip) under ``CI=true``: the fixtures fail when Postgres/Redis are down.
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from live_deploy import free_port, kill_processes_of, make_key, spawn, stop, wait_healthy

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]

# Enough for AutoNormal on eight schools to settle within about +-1 of the posterior
# mean of mu (4.4) in a few seconds; fixed seed.
EIGHT_SCHOOLS_JOB = {
    "model": {"catalog": "eight_schools_noncentered"},
    "guide": {"auto": "AutoNormal"},
    "inference": {"optimizer": {"name": "Adam", "lr": 0.05}, "steps": 1500, "seed": 0, "stop": "steps",
                  "progress_every_steps": 100, "progress_every_s": 0.5},
    "outputs": {"num_samples": 1000, "log_prob_draws": 200, "elbo_terms_every": 250,
                "grad_norms_every": 250},
    "labels": {"suite": "e2e"},
}


@pytest.fixture(params=["production", "embedded"])
def server(request, tmp_path, make_settings_env, celery_worker_proc):
    """(name, base URL, headers) of a running deployment, stopped at teardown.

    production: migrate, an API key, ``uvicorn api.app:create_app --factory`` and a separate
    ``celery worker`` process (Postgres + Redis). embedded: ``vihub up`` with only
    ``VIHUB_HOME`` set, exactly as a laptop user runs it (it migrates, and starts the API,
    a Celery worker process and the sweeper itself).
    """
    home = tmp_path / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    if request.param == "production":
        database_url = request.getfixturevalue("pg_url")
        broker_url = request.getfixturevalue("redis_url")
        env = make_settings_env(database_url, broker_url, home=home, auth="required")
        from store.migrate import upgrade

        upgrade(database_url)
        headers = {"Authorization": f"Bearer {make_key(database_url)}"}
        worker = celery_worker_proc(env, queues="cpu", pool="prefork", concurrency=1)
        proc = spawn([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                      "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env, log_path)
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
        env.update({"VIHUB_HOME": str(home), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
        headers = {}
        worker = None
        proc = spawn([sys.executable, "-c", "from vihub.cli import main; main()", "up", "--port", str(port)],
                     env, log_path)
    try:
        wait_healthy(proc, base, log_path, timeout=120)
        yield request.param, base, headers
    finally:
        stop(proc, timeout=60)
        if worker is not None:
            assert worker.alive(), worker.log()[-3000:]
        # (production's worker belongs to celery_worker_proc, which stops it itself)
        left_over = kill_processes_of(home) if request.param == "embedded" else []
    if request.param == "embedded":
        assert (home / "vihub.sqlite3").exists()  # it really used the embedded store
        # `vihub up` must take its Celery worker down with it on SIGTERM.
        assert not left_over, f"vihub up left processes running after SIGTERM: {left_over}"


def test_eight_schools_full_cycle(server):
    name, base, headers = server
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        run_full_cycle(client, name)


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
