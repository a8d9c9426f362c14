"""A 2x2 sweep (AutoNormal vs AutoMultivariateNormal x two learning rates) on eight schools,
through HTTP as a user does it: uvicorn + a separate Celery worker on Postgres/Redis.

Checks the sweep's progress, its comparison table (four rows, ELBO standard errors,
k-hat readings, the recommended row by the documented rule), a continue of the
recommended fit, and that cancelling and deleting the sweep cascades to its jobs.
"""

from __future__ import annotations

import sys
import time

import httpx
import numpy as np
import pytest
from live_deploy import free_port, make_key, spawn, stop, wait_healthy

pytestmark = pytest.mark.e2e

SWEEP = {
    "name": "eight-schools-guides",
    "base": {
        "model": {"catalog": "eight_schools_noncentered"},
        "guide": {"auto": "AutoNormal"},
        "inference": {"steps": 600, "seed": 0, "progress_every_steps": 100, "progress_every_s": 0.5},
        "outputs": {"num_samples": 400, "log_prob_draws": 400, "elbo_terms_every": 0, "grad_norms_every": 0},
    },
    "axes": {"guide.auto": ["AutoNormal", "AutoMultivariateNormal"], "inference.optimizer.lr": [0.01, 0.05]},
    "labels": {"suite": "e2e-sweeps"},
}


@pytest.fixture
def production(tmp_path, make_settings_env, celery_worker_proc, pg_url, redis_url):
    from store.migrate import upgrade

    upgrade(pg_url)
    env = make_settings_env(pg_url, redis_url, home=tmp_path / "home", auth="required")
    headers = {"Authorization": f"Bearer {make_key(pg_url)}"}
    worker = celery_worker_proc(env, queues="cpu", pool="prefork", concurrency=1)
    port = free_port()
    log_path = tmp_path / "api.log"
    proc = spawn([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                  "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"], env, log_path)
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", log_path, timeout=120)
        yield f"http://127.0.0.1:{port}", headers
    finally:
        stop(proc, timeout=60)
        assert worker.alive(), worker.log()[-3000:]


def poll_sweep(client: httpx.Client, sweep_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    sweep: dict = {}
    while time.monotonic() < deadline:
        sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
        if sweep["done"]:
            return sweep
        time.sleep(1.0)
    pytest.fail(f"sweep {sweep_id} not done after {timeout}s: {sweep.get('counts')}")


def test_two_by_two_sweep_on_eight_schools(production) -> None:
    base, headers = production
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        created = client.post("/v1/sweeps", json=SWEEP, headers={"Idempotency-Key": "e2e-sweep"})
        assert created.status_code == 202, created.text
        sweep_id = created.json()["id"]
        assert len(created.json()["members"]) == 4

        sweep = poll_sweep(client, sweep_id, timeout=600)
        assert sweep["counts"]["succeeded"] == 4, sweep["counts"]
        assert sweep["state"] == "finished" and sweep["progress"] == pytest.approx(1.0)

        table = client.get(f"/v1/sweeps/{sweep_id}/comparison").json()
        rows = table["rows"]
        assert len(rows) == 4
        assert {(r["guide"], r["lr"]) for r in rows} == {
            (g, lr) for g in ("AutoNormal", "AutoMultivariateNormal") for lr in (0.01, 0.05)}
        for row in rows:
            assert np.isfinite(row["elbo"]) and row["elbo_se"] > 0 and row["elbo_draws"] == 400
            assert row["k_hat_reading"] in ("good", "ok", "unreliable", "very bad")
            assert row["trusted"] == (row["k_hat_reading"] in ("good", "ok"))
            assert row["steps"] == 600 and row["wall_s"] > 0 and row["converged"] in (True, False)
            assert row["elpd_loo"] is not None and row["n_observations"] == 8
        # Same model everywhere: the ELBO decides, among trusted fits when there are any.
        assert table["rule"]["criterion"] == "elbo" and table["rule"]["models_differ"] is False
        candidates = [r for r in rows if r["trusted"]] or rows
        best = max(candidates, key=lambda r: r["elbo"])
        assert table["recommended"] == best["job_id"]
        assert [r["job_id"] for r in rows if r["recommended"]] == [best["job_id"]]
        assert [r["elbo"] for r in rows] == sorted((r["elbo"] for r in rows), reverse=True)

        by_k = client.get(f"/v1/sweeps/{sweep_id}/comparison", params={"sort": "k_hat", "order": "asc"}).json()
        ks = [r["k_hat"] for r in by_k["rows"] if r["k_hat"] is not None]
        assert ks == sorted(ks)
        ids = ",".join(r["job_id"] for r in rows)
        assert client.get("/v1/compare", params={"jobs": ids}).json()["recommended"] == table["recommended"]

        # Continue the recommended fit: a normal job that resumes its optimizer state.
        more = client.post(f"/v1/jobs/{best['job_id']}/continue", json={"steps": 100})
        assert more.status_code == 202, more.text
        deadline = time.monotonic() + 300
        while (job := client.get(f"/v1/jobs/{more.json()['id']}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["state"] == "succeeded", job
        assert job["progress"]["step"] == 700

        # Delete cascades: the sweep and its four jobs are gone.
        assert client.delete(f"/v1/sweeps/{sweep_id}").status_code == 204
        assert client.get(f"/v1/sweeps/{sweep_id}").status_code == 404
        for row in rows:
            assert client.get(f"/v1/jobs/{row['job_id']}").status_code == 404
