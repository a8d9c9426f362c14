"""Scale-out: two worker processes that share Postgres, Redis and an S3-protocol blob
store (moto's server) but no filesystem (each its own VIHUB_HOME and dataset cache).

A job's dataset lives only in the blob store; the first worker fetches it into its own
cache, checkpoints to the blob store, and is SIGKILLed with its job half done. The
second worker, which has never seen the dataset, gets the job from the sweeper once the
lease expires, fetches the dataset from the blob store into *its* cache, loads the
checkpoint from the blob store and resumes the run to one continuous loss curve.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from s3_server import s3_settings_env, start_s3_server

from common.arrays import encode_arrays
from store.blobs import blob_store, dataset_key
from store.models import ArtifactKind
from store.repositories import ArtifactRepository, DatasetRepository, JobRepository, LossPointRepository
from common.broker import publish_job

pytestmark = pytest.mark.integration

SCALE_OUT = {
    "worker__lease_seconds": 5,
    "worker__heartbeat_seconds": 1,
    "worker__checkpoint_every_s": 1,
    "worker__progress_every_s": 0.2,
    "worker__soft_time_limit_s": 240,
    "worker__hard_time_limit_s": 250,
    # The sweeper, not Redis redelivery, hands the job over in this test.
    "worker__visibility_timeout_s": 600,
    "worker__sweeper_interval_s": 1,
    "worker__requeue_after_s": 3,
    # Every artifact, checkpoints included, goes through the blob store.
    "blobs__inline_max_bytes": 0,
}


@pytest.fixture
def s3_url(tmp_path: Path) -> Any:
    server = start_s3_server(tmp_path)
    yield server.url
    server.stop()


def job_of(factory: Any, job_id: str) -> Any:
    with factory.begin() as s:
        return JobRepository(s).get(job_id)


def checkpoint(factory: Any, job_id: str) -> Any:
    with factory.begin() as s:
        return ArtifactRepository(s).get(job_id, ArtifactKind.CHECKPOINT)


def test_dataset_and_checkpoint_reach_whichever_worker_runs_the_job(
    fresh_pg_url: str, redis_url: str, s3_url: str, tmp_path: Path, session_factory_for: Any,
    tenant_factory_for: Any, celery_worker_proc: Any, sweeper_proc: Any, make_settings_env: Any,
    env_settings: Any, make_spec: Any, wait_until: Any,
) -> None:
    from inference import catalog

    steps = 700
    factory = session_factory_for(fresh_pg_url)
    s3 = s3_settings_env(s3_url)
    homes = {name: tmp_path / name for name in ("host-a", "host-b", "api")}

    # One environment (one Redis key prefix, one bucket); only VIHUB_HOME differs per host.
    shared = {**make_settings_env(fresh_pg_url, redis_url, **SCALE_OUT), **s3}

    def env_for(home: Path) -> dict[str, str]:
        return {**shared, "VIHUB_HOME": str(home)}

    api_settings = env_settings(env_for(homes["api"]))
    # The dataset exists only in the blob store (as the API's uploads leave it).
    encoded = encode_arrays(dict(catalog.get("eight_schools_noncentered").example_data))
    key = dataset_key(encoded.sha256)
    blob_store(api_settings).put_bytes(key, encoded.content)
    tenant_id = tenant_factory_for(factory).id
    with factory.begin() as s:
        dataset, _ = DatasetRepository(s).get_or_create(tenant_id, encoded.sha256, None, encoded.fields, "npz",
                                                        blob_key=key, size_bytes=len(encoded.content))
        # Pyro's path: slow enough that a checkpoint is written before the job ends.
        job_id = JobRepository(s).create(tenant_id=tenant_id, spec=make_spec(steps=steps, fast_path=False),
                                         dataset_id=dataset.id).id

    first = celery_worker_proc(env_for(homes["host-a"]))
    publish_job(job_id, "cpu", api_settings)
    wait_until(lambda: (lambda c: c is not None and int(c.meta["step"]) >= 100)(checkpoint(factory, job_id)), 240,
               message="a checkpoint in the blob store")
    ckpt = checkpoint(factory, job_id)
    assert ckpt.blob_key and blob_store(api_settings).exists(ckpt.blob_key)
    cache_a = homes["host-a"] / "dataset-cache" / f"{encoded.sha256}.npz"
    assert cache_a.is_file(), "the first worker fetched the dataset into its own cache"
    job = job_of(factory, job_id)
    assert job.state == "running" and job.attempts == 1

    # The first host dies: main process, pool child, sandbox.
    child = int(job.worker_id.split(":")[1])
    os.killpg(first.pid, signal.SIGKILL)
    try:
        os.kill(child, signal.SIGKILL)
    except ProcessLookupError:
        pass
    killed_at = job_of(factory, job_id).progress["step"]
    assert killed_at < steps, "the job finished before it could be killed; make it longer"

    second = celery_worker_proc(env_for(homes["host-b"]))
    sweeper_proc(env_for(homes["api"]))
    wait_until(lambda: job_of(factory, job_id).state in ("succeeded", "failed", "cancelled"), 300, interval=1,
               message="the job to end on the second worker")
    job = job_of(factory, job_id)
    assert job.state == "succeeded", job.error
    assert job.attempts == 2
    log = second.log()
    assert "resuming from the checkpoint at step" in log
    assert (homes["host-b"] / "dataset-cache" / f"{encoded.sha256}.npz").is_file(), \
        "the second worker fetched the dataset from the blob store into its own cache"
    with factory.begin() as s:
        points = [p for p, _ in LossPointRepository(s).list_for_job(job_id)]
        artifacts = ArtifactRepository(s).list_for_job(job_id)
    assert points == list(range(1, steps + 1))  # one continuous curve, no gap, no duplicate
    assert {a.kind for a in artifacts} >= {ArtifactKind.RESULT_JSON, ArtifactKind.SAMPLES_NPZ}
    assert all(a.blob_key for a in artifacts) and ArtifactKind.CHECKPOINT not in {a.kind for a in artifacts}
    # The finished job's checkpoint blobs are gone from the store.
    assert not blob_store(api_settings).exists(ckpt.blob_key)
