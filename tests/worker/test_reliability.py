"""Reliability: a worker SIGKILLed mid-job, and Redis restarted mid-run.

Postgres store, Redis broker, real ``celery worker`` processes and the real engine on
eight schools. The settings are shortened for the tests (lease 5 s, checkpoint every
1 s, Redis visibility timeout 50 s in the broker-redelivery case) so recovery happens within a minute or two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.broker import publish_job
from store.models import ArtifactKind
from store.repositories import ArtifactRepository, JobRepository, LossPointRepository

pytestmark = pytest.mark.integration

RELIABILITY = {
    "worker__lease_seconds": 5,
    "worker__heartbeat_seconds": 1,
    "worker__checkpoint_every_s": 1,
    "worker__progress_every_s": 0.2,
    "worker__soft_time_limit_s": 240,
    "worker__hard_time_limit_s": 250,
    "worker__visibility_timeout_s": 260,
    "worker__sweeper_interval_s": 1,
    "worker__requeue_after_s": 3,
}

REDIS_START = [
    "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
    "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log",
]


def job_of(factory: Any, job_id: str) -> Any:
    with factory.begin() as s:
        return JobRepository(s).get(job_id)


def checkpoint_step(factory: Any, job_id: str) -> int | None:
    with factory.begin() as s:
        art = ArtifactRepository(s).get(job_id, ArtifactKind.CHECKPOINT)
        return int(art.meta["step"]) if art is not None else None


def assert_one_continuous_curve(factory: Any, job_id: str, steps: int) -> list[float]:
    with factory.begin() as s:
        points = LossPointRepository(s).list_for_job(job_id)
        count = LossPointRepository(s).count(job_id)
        result = json.loads(ArtifactRepository(s).get_content(job_id, ArtifactKind.RESULT_JSON))
    assert count == steps == len(points)
    assert [p for p, _ in points] == list(range(1, steps + 1))  # no gap, no duplicate
    values = [v for _, v in points]
    assert np.all(np.isfinite(values))
    assert np.allclose(values, result["loss"])  # the stored curve is the result's curve
    return values


def child_pid(job: Any) -> int:
    return int(job.worker_id.split(":")[1])


@pytest.mark.parametrize("recovery", ["broker-redelivery", "sweeper"])
def test_sigkill_mid_job_resumes_from_checkpoint(
    recovery: str, fresh_pg_url: str, redis_url: str, tmp_path: Path, session_factory_for: Any,
    tenant_factory_for: Any, celery_worker_proc: Any, sweeper_proc: Any, make_settings_env: Any,
    env_settings: Any, create_job_in: Any, make_spec: Any, wait_until: Any,
) -> None:
    """``broker-redelivery``: the whole worker dies (main process and child, like a lost
    machine); a new worker gets the unacked message back from Redis after the visibility
    timeout (shortened to 50 s here). ``sweeper``: only the child running the job is
    killed; the sweeper reclaims the job when its lease expires and republishes it.
    Either way the job resumes from its last checkpoint."""
    steps = 700
    # A database of their own: the sweeper scans every job in the store.
    pg_url = fresh_pg_url
    factory = session_factory_for(pg_url)
    options = dict(RELIABILITY)
    if recovery == "broker-redelivery":
        options.update(worker__soft_time_limit_s=40, worker__hard_time_limit_s=45,
                       worker__visibility_timeout_s=50)
    env = make_settings_env(pg_url, redis_url, home=tmp_path, **options)
    first = celery_worker_proc(env)
    if recovery == "sweeper":
        sweeper_proc(env)
    # Pyro's path: the fast path finishes 700 steps before a checkpoint could be killed.
    job_id = create_job_in(factory, tenant_factory_for(factory).id, spec=make_spec(steps=steps, fast_path=False))
    publish_job(job_id, "cpu", env_settings(env))

    # Kill well into the run, so the resume visibly skips work.
    wait_until(lambda: (checkpoint_step(factory, job_id) or 0) >= 100, 240, message="a checkpoint")
    job = job_of(factory, job_id)
    assert job.state == "running" and job.attempts == 1
    pid = child_pid(job)
    if recovery == "broker-redelivery":
        os.kill(first.pid, signal.SIGKILL)  # main first: nobody is left to reject/requeue
    os.kill(pid, signal.SIGKILL)
    killed_at_step = job_of(factory, job_id).progress["step"]
    ckpt = checkpoint_step(factory, job_id)
    assert killed_at_step < steps, "the job finished before it could be killed; make it longer"

    if recovery == "broker-redelivery":
        first.stop()
        second = celery_worker_proc(env)
    else:
        second = first  # the same worker, a fresh pool child
    wait_until(lambda: job_of(factory, job_id).state in ("succeeded", "failed", "cancelled"), 300,
               interval=1, message="the job to end after the kill")
    job = job_of(factory, job_id)
    assert job.state == "succeeded", job.error
    assert job.attempts == 2
    assert "resuming from the checkpoint at step" in second.log()
    assert_one_continuous_curve(factory, job_id, steps)
    assert ckpt is not None and 0 < ckpt <= killed_at_step


def _redis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", *args],
                          capture_output=True, text=True, timeout=30, check=False)


def test_redis_restart_loses_no_job(
    fresh_pg_url: str, redis_url: str, tmp_path: Path, session_factory_for: Any, tenant_factory_for: Any,
    celery_worker_proc: Any, sweeper_proc: Any, make_settings_env: Any, env_settings: Any,
    create_job_in: Any, make_spec: Any, wait_until: Any,
) -> None:
    """Redis restarts without persistence while one job runs and another waits in the
    queue: both messages are gone, yet both jobs end ``succeeded`` (the running one keeps
    going on the database; the sweeper republishes the queued one)."""
    # A database of their own: the sweeper scans every job in the store.
    pg_url = fresh_pg_url
    factory = session_factory_for(pg_url)
    env = make_settings_env(pg_url, redis_url, home=tmp_path, **RELIABILITY)
    celery_worker_proc(env)
    sweeper_proc(env)
    tenant_id = tenant_factory_for(factory).id
    running_id = create_job_in(factory, tenant_id, spec=make_spec(steps=800, fast_path=False))  # still running
    waiting_id = create_job_in(factory, tenant_id, spec=make_spec(steps=100))
    settings = env_settings(env)
    publish_job(running_id, "cpu", settings)
    wait_until(lambda: job_of(factory, running_id).progress, 240, message="the first job to run")
    publish_job(waiting_id, "cpu", settings)  # concurrency 1: this one waits in Redis

    _redis_cli("shutdown", "nosave")
    try:
        wait_until(lambda: _redis_cli("ping").returncode != 0, 20, message="Redis to stop")
        time.sleep(1)
    finally:
        subprocess.run(REDIS_START, check=True, timeout=30)
    wait_until(lambda: _redis_cli("ping").stdout.strip() == "PONG", 30, message="Redis to restart")

    for job_id in (running_id, waiting_id):
        wait_until(lambda job_id=job_id: job_of(factory, job_id).state in ("succeeded", "failed", "cancelled"),
                   300, interval=1, message=f"job {job_id} to end after the Redis restart")
    for job_id, steps in ((running_id, 800), (waiting_id, 100)):
        assert job_of(factory, job_id).state == "succeeded", job_of(factory, job_id).error
        assert_one_continuous_curve(factory, job_id, steps)
