"""Isolation through the real service: a hostile tenant against a victim, over HTTP.

Deployments (real processes, as an operator runs them):

- ``production``: uvicorn + a separate Celery worker (one pool process, so attacker and
  victim share it) on Postgres + Redis, two tenants with their own API keys;
- ``embedded``: ``vihub up`` (SQLite, serverless broker, its own worker).

Each poisoned source below tries to leave a Pyro handler carrying its own callback on
Pyro's process-global stack (the reported attack), through the routes that run user
code: the submission dry run (API) and the job (worker). Whether the language refuses it
(422) or it runs, the victim's job that follows must succeed with the right posterior
and nothing of the victim's data may appear in anything the attacker can read.

Then OS limits: a memory bomb and a CPU bomb that pass the dry run (they only explode
after a few dozen model calls) end ``failed`` with ``resource-limit`` naming the limit,
the worker survives, its parent's RSS stays flat, and the next tenant's job succeeds.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from live_deploy import free_port, kill_processes_of, make_key, spawn, stop, wait_healthy

pytestmark = pytest.mark.e2e

# The victim's secret observations: 20 values around 7.123456 (digits no attacker guesses).
SECRET = [7.123456 + 0.01 * ((7 * i) % 11 - 5) for i in range(20)]
PRIOR_SD = 10.0
POSTERIOR_MEAN = sum(SECRET) / (len(SECRET) + 1 / PRIOR_SD**2)
POSTERIOR_SD = (len(SECRET) + 1 / PRIOR_SD**2) ** -0.5

VICTIM_SOURCE = textwrap.dedent("""
    import pyro
    import pyro.distributions as dist

    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("data", len(y)):
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
""")


def victim_job() -> dict:
    return {"model": {"source": VICTIM_SOURCE}, "data": {"inline": {"y": SECRET}},
            "guide": {"auto": "AutoNormal"},
            "inference": {"optimizer": {"name": "Adam", "lr": 0.05}, "steps": 800, "seed": 1},
            "outputs": {"num_samples": 400, "log_prob_draws": 20}}


_SPY = """
import pyro
import pyro.distributions as dist
from pyro import poutine
from pyro import plate

SEEN = []
KEPT = []

def spy(msg):
    SEEN.append(msg["value"])
    if msg.get("is_observed"):
        msg["value"] = msg["value"] * 0.0
    return False
"""

POISONED_SOURCES = {
    # A suspended plate iterator under a block whose hide_fn is the spy, kept alive in a
    # module-level list so its handlers are never popped.
    "suspended-plate-under-block": _SPY + textwrap.dedent("""
        def model(y):
            if not KEPT:
                with poutine.block(hide_fn=spy):
                    it = iter(pyro.plate("leak", 3))
                    next(it)
                    KEPT.append(it)
            mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
            return SEEN
    """),
    # A Pyro primitive reached at module level through `from pyro import plate`.
    "top-level-plate": _SPY + textwrap.dedent("""
        LEAK = iter(plate("leak", 3))
        next(LEAK)

        def model(y):
            mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
    """),
    # The same reached through a call to a user function at module level.
    "top-level-call": _SPY + textwrap.dedent("""
        def poison():
            it = iter(pyro.markov(range(10)))
            next(it)
            KEPT.append(it)

        poison()

        def model(y):
            mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
    """),
    # A sequential plate left by `break` at module level, its index kept in a list.
    "top-level-loop-break": _SPY + textwrap.dedent("""
        for i in plate("leak", 3):
            KEPT.append(i)
            break

        def model(y):
            mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
    """),
    # A markov context left by `break` inside the model, under a block with the spy.
    "markov-break-under-block": _SPY + textwrap.dedent("""
        def model(y):
            with poutine.block(hide_fn=spy):
                for t in pyro.markov(range(5)):
                    KEPT.append(t)
                    break
            mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
    """),
    # A callable handed to Pyro that would see every message of later fits.
    "hide-fn-callable": _SPY + textwrap.dedent("""
        def model(y):
            with poutine.block(hide_fn=spy):
                mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
    """),
}

# Bombs that pass the dry run (a handful of model calls) and explode in training.
CALLS = "CALLS = []\n"
MEMORY_BOMB = "import torch\nimport pyro\nimport pyro.distributions as dist\n" + CALLS + textwrap.dedent("""
    def model(y):
        CALLS.append(1)
        if len(CALLS) > 40:
            for i in range(200):
                CALLS.append(torch.zeros(20_000_000))
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
""")
CPU_BOMB = "import torch\nimport pyro\nimport pyro.distributions as dist\n" + CALLS + textwrap.dedent("""
    def model(y):
        CALLS.append(1)
        if len(CALLS) > 40:
            x = torch.ones(4_000_000)
            for i in range(90_000):
                x = x * 1.0000001
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)
""")
JOB_MEMORY_MB = 300
JOB_CPU_SECONDS = 6


def bomb_job(source: str) -> dict:
    return {"model": {"source": source}, "data": {"inline": {"y": [0.5, 1.5]}},
            "guide": {"auto": "AutoNormal"}, "inference": {"steps": 2000, "seed": 0}}


# ---- deployments --------------------------------------------------------------------


class Deployment:
    def __init__(self, name: str, base: str, attacker: dict[str, str], victim: dict[str, str],
                 worker_pid: int | None) -> None:
        self.name, self.base, self.attacker, self.victim = name, base, attacker, victim
        self.worker_pid = worker_pid
        self.client = httpx.Client(base_url=base, timeout=60)

    def submit(self, headers: dict[str, str], body: dict) -> httpx.Response:
        return self.client.post("/v1/jobs", json=body, headers=headers)

    def wait(self, headers: dict[str, str], job_id: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}", headers=headers).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.5)
        pytest.fail(f"job {job_id} did not end within {timeout} s")


@pytest.fixture(params=["production", "embedded"])
def deployment(request, tmp_path: Path, make_settings_env, celery_worker_proc):
    home = tmp_path / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    limits = {"sandbox__job_memory_mb": JOB_MEMORY_MB, "sandbox__job_cpu_seconds": JOB_CPU_SECONDS}
    if request.param == "production":
        database_url = request.getfixturevalue("pg_url")
        env = make_settings_env(database_url, request.getfixturevalue("redis_url"), home=home, auth="required",
                                **limits)
        from store.migrate import upgrade

        upgrade(database_url)
        attacker = {"Authorization": f"Bearer {make_key(database_url)}"}
        victim = {"Authorization": f"Bearer {make_key(database_url)}"}
        worker = celery_worker_proc(env, queues="cpu", pool="prefork", concurrency=1)
        worker_pid = worker.pid
        proc = spawn([sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
                      "--port", str(port), "--log-level", "warning"], env, log_path)
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
        env.update({"VIHUB_HOME": str(home), "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                    "OMP_NUM_THREADS": "1", "VIHUB_SANDBOX__JOB_MEMORY_MB": str(JOB_MEMORY_MB),
                    "VIHUB_SANDBOX__JOB_CPU_SECONDS": str(JOB_CPU_SECONDS)})
        attacker = victim = {}
        worker_pid = None
        proc = spawn([sys.executable, "-c", "from vihub.cli import main; main()", "up", "--port", str(port)],
                     env, log_path)
    try:
        wait_healthy(proc, base, log_path, timeout=120)
        yield Deployment(request.param, base, attacker, victim, worker_pid)
    finally:
        stop(proc, timeout=60)
        if request.param == "embedded":
            kill_processes_of(home)


# ---- tests --------------------------------------------------------------------------


def _no_secret_in(text: str) -> None:
    for value in ("7.123456", "7.11345", "7.13345", "7.1334"):
        assert value not in text, f"the victim's data leaked: {value!r} in {text[:400]}"


def test_a_poisoned_source_cannot_see_or_change_another_tenants_job(deployment: Deployment) -> None:
    attacker_views: list[str] = []
    attacker_jobs = []
    for name, source in POISONED_SOURCES.items():
        body = {"model": {"source": source}, "data": {"inline": {"y": [0.5, 1.5]}},
                "guide": {"auto": "AutoNormal"}, "inference": {"steps": 300, "seed": 0},
                "labels": {"attack": name}}
        response = deployment.submit(deployment.attacker, body)
        assert response.status_code in (202, 422), (name, response.status_code, response.text)
        attacker_views.append(response.text)
        if response.status_code == 202:
            attacker_jobs.append(response.json()["id"])

    # The victim submits while the attacker's jobs are queued or running on the same worker.
    victim = deployment.submit(deployment.victim, victim_job())
    assert victim.status_code == 202, victim.text
    victim_id = victim.json()["id"]
    for job_id in attacker_jobs:
        job = deployment.wait(deployment.attacker, job_id)
        attacker_views.append(str(job))
        if job["state"] == "succeeded":
            for path in ("samples", "summary", "diagnostics", "log-probs", "params"):
                attacker_views.append(deployment.client.get(f"/v1/jobs/{job_id}/{path}",
                                                            headers=deployment.attacker).text)

    done = deployment.wait(deployment.victim, victim_id)
    assert done["state"] == "succeeded", done
    summary = deployment.client.get(f"/v1/jobs/{victim_id}/summary", headers=deployment.victim).json()["summary"]
    # Rewritten observations (x 0) would put mu near 0; the exact posterior is N(7.12, 0.22).
    assert abs(summary["mu"]["mean"] - POSTERIOR_MEAN) < 0.5 * POSTERIOR_SD + 0.05, summary["mu"]

    if deployment.name == "production":
        # Another tenant's job is not even visible to the attacker.
        assert deployment.client.get(f"/v1/jobs/{victim_id}", headers=deployment.attacker).status_code == 404
        for view in attacker_views:
            _no_secret_in(view)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.parametrize("deployment", ["production"], indirect=True)
def test_memory_and_cpu_bombs_fail_with_resource_limit_and_the_worker_survives(deployment: Deployment) -> None:
    # One ordinary job first, so the worker's parent has done its one-off allocations.
    warm = deployment.submit(deployment.victim, victim_job()).json()["id"]
    assert deployment.wait(deployment.victim, warm)["state"] == "succeeded"
    rss_before = _rss_kb(deployment.worker_pid)

    outcomes = {}
    for name, source, limit, value in (("memory", MEMORY_BOMB, "memory", JOB_MEMORY_MB),
                                       ("cpu", CPU_BOMB, "cpu", JOB_CPU_SECONDS)):
        response = deployment.submit(deployment.attacker, bomb_job(source))
        assert response.status_code == 202, response.text  # it passes the dry run
        started = time.monotonic()
        job = deployment.wait(deployment.attacker, response.json()["id"], timeout=180)
        outcomes[name] = (job, time.monotonic() - started)
        error = job.get("error") or {}
        assert job["state"] == "failed", job
        assert error.get("type", "").endswith("/resource-limit"), error
        assert error.get("limit") == limit and error.get("limit_value") == value, error
        assert job["attempts"] == 1, job  # a breached limit is final, not retried

    # The same worker, right after: another tenant's job runs normally.
    after = deployment.submit(deployment.victim, victim_job()).json()["id"]
    done = deployment.wait(deployment.victim, after)
    assert done["state"] == "succeeded", done
    assert os.path.exists(f"/proc/{deployment.worker_pid}")
    rss_after = _rss_kb(deployment.worker_pid)
    assert rss_after - rss_before < 50_000, (rss_before, rss_after)  # KB: flat, not +GB
