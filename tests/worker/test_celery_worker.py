"""A real ``celery worker`` process runs jobs published to a real broker.

- Postgres store + Redis broker (production shape);
- SQLite store + the embedded SQLAlchemy broker (``vihub up`` shape);
- cooperative cancellation through the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.broker import publish_job
from store.models import ArtifactKind
from store.repositories import ArtifactRepository, JobRepository, LossPointRepository

pytestmark = pytest.mark.integration

FAST = {
    "worker__progress_every_s": 0.2,
    "worker__heartbeat_seconds": 1,
    "worker__checkpoint_every_s": 1,
    "worker__lease_seconds": 10,
}


def state_of(factory: Any, job_id: str) -> Any:
    with factory.begin() as s:
        return JobRepository(s).get(job_id)


def assert_succeeded_with_results(factory: Any, job_id: str, steps: int) -> None:
    job = state_of(factory, job_id)
    assert job.state == "succeeded", job.error
    with factory.begin() as s:
        points = LossPointRepository(s).list_for_job(job_id)
        kinds = {a.kind for a in ArtifactRepository(s).list_for_job(job_id)}
    assert [p for p, _ in points] == list(range(1, steps + 1))
    assert np.all(np.isfinite([v for _, v in points]))
    assert {ArtifactKind.RESULT_JSON, ArtifactKind.SAMPLES_NPZ, ArtifactKind.PARAMS_SAFETENSORS,
            ArtifactKind.LOG_PROBS_NPZ} <= kinds


def test_worker_runs_job_from_redis_on_postgres(
    pg_url: str, redis_url: str, tmp_path: Path, session_factory_for: Any, tenant_factory_for: Any,
    celery_worker_proc: Any, make_settings_env: Any, env_settings: Any, create_job_in: Any,
    make_spec: Any, wait_until: Any,
) -> None:
    factory = session_factory_for(pg_url)
    env = make_settings_env(pg_url, redis_url, home=tmp_path, **FAST)
    celery_worker_proc(env)
    job_id = create_job_in(factory, tenant_factory_for(factory).id, spec=make_spec(steps=100))
    publish_job(job_id, "cpu", env_settings(env))
    wait_until(lambda: state_of(factory, job_id).state in ("succeeded", "failed", "cancelled"), 180,
               message="the job to end")
    assert_succeeded_with_results(factory, job_id, 100)


def test_worker_runs_job_from_embedded_broker_on_sqlite(
    tmp_path: Path, embedded_broker_url: str, session_factory_for: Any, tenant_factory_for: Any,
    celery_worker_proc: Any, make_settings_env: Any, env_settings: Any, create_job_in: Any,
    make_spec: Any, wait_until: Any,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'vihub.sqlite3'}"
    factory = session_factory_for(db_url)
    env = make_settings_env(db_url, embedded_broker_url, home=tmp_path, broker__polling_interval_s=0.05, **FAST)
    worker = celery_worker_proc(env, pool="solo")
    # The consumer polls with vihub's SQL transport at the configured interval, not kombu's
    # own transport at its 1 s default (which was most of an embedded job's dispatch time).
    assert "consuming with common.sql_broker.Transport, polling an empty queue every 0.05 s" in worker.log()
    job_id = create_job_in(factory, tenant_factory_for(factory).id, spec=make_spec(steps=100))
    publish_job(job_id, "cpu", env_settings(env))
    wait_until(lambda: state_of(factory, job_id).state in ("succeeded", "failed", "cancelled"), 180,
               message="the job to end")
    assert_succeeded_with_results(factory, job_id, 100)


def test_cancel_a_running_job(
    pg_url: str, redis_url: str, tmp_path: Path, session_factory_for: Any, tenant_factory_for: Any,
    celery_worker_proc: Any, make_settings_env: Any, env_settings: Any, create_job_in: Any,
    make_spec: Any, wait_until: Any,
) -> None:
    factory = session_factory_for(pg_url)
    env = make_settings_env(pg_url, redis_url, home=tmp_path, **FAST)
    celery_worker_proc(env)
    job_id = create_job_in(factory, tenant_factory_for(factory).id, spec=make_spec(steps=50_000))
    publish_job(job_id, "cpu", env_settings(env))
    wait_until(lambda: (j := state_of(factory, job_id)).state == "running" and j.progress, 180,
               message="the job to run")
    with factory.begin() as s:
        JobRepository(s).request_cancel(job_id)
    wait_until(lambda: state_of(factory, job_id).state != "running", 60, message="the cancel")
    job = state_of(factory, job_id)
    assert job.state == "cancelled"
    assert job.progress["step"] < 50_000
