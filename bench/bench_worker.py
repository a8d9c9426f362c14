"""Worker overhead: a job's steps/s on the worker (Celery + store) vs the engine in-process.

Both sides run the same job spec (eight schools, AutoNormal, Adam) with the same torch
thread count, interleaved (in-process, worker, in-process, worker, ...) so that load on a
shared machine hits both alike; the figures are medians. Target: ratio >= 0.95.

- ``loop steps/s`` = ``meta.steps_done / meta.train_s`` from the ``FitResult`` (the
  in-process result, and the worker's ``result_json`` artifact); ``train_s`` runs from
  the start of ``fit`` to the end of training (setup and validation included), with the
  worker's callbacks (batched progress + loss-point writes, cancel checks, checkpoints,
  the heartbeat thread) in it.
- ``job steps/s`` = steps / (``finished_at`` - ``started_at``) for the worker and steps /
  the whole ``fit()`` call in-process: adds setup, validation, result building and, on
  the worker, storing the artifacts.

Usage::

    python bench/bench_worker.py                       # embedded: SQLite + SQLAlchemy broker
    python bench/bench_worker.py --steps 3000 --repeats 5
    python bench/bench_worker.py --database-url postgresql+psycopg://postgres@127.0.0.1/DB \
        --broker-url redis://127.0.0.1:6379/9         # a migrated Postgres + Redis
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from live_deploy import stop  # noqa: E402


def job_spec(steps: int) -> dict:
    return {
        "version": 1,
        "model": {"catalog": "eight_schools_noncentered"},
        "guide": {"auto": "AutoNormal"},
        "inference": {"steps": steps, "seed": 0, "optimizer": {"name": "Adam", "lr": 0.05}},
        "outputs": {"num_samples": 200},
    }


def run_in_process(spec: dict) -> tuple[float, float]:
    from inference import JobSpec, catalog, fit

    data = dict(catalog.get("eight_schools_noncentered").example_data)
    t0 = time.perf_counter()
    result = fit(JobSpec.model_validate(spec), data)
    wall = time.perf_counter() - t0
    meta = result.meta
    return meta["steps_done"] / meta["train_s"], meta["steps_done"] / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo"], help="the worker's pool")
    parser.add_argument("--database-url", default=None, help="default: a temp SQLite file")
    parser.add_argument("--broker-url", default=None, help="default: a temp SQLAlchemy/SQLite broker")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="vihub-bench-worker-"))
    database_url = args.database_url or f"sqlite:///{home / 'vihub.sqlite3'}"
    broker_url = args.broker_url or f"sqla+sqlite:///{home / 'broker.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
    env.update({
        "VIHUB_HOME": str(home), "VIHUB_DATABASE_URL": database_url, "VIHUB_BROKER_URL": broker_url,
        "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
        "PYTHONPATH": str(REPO_ROOT),
    })
    if broker_url.startswith("redis"):
        env["VIHUB_BROKER_TRANSPORT_OPTIONS"] = json.dumps({"global_keyprefix": f"vihub-bench-{os.getpid()}:"})
    os.environ.update({k: v for k, v in env.items() if k.startswith(("VIHUB_", "OMP_", "MKL_"))})

    import torch

    torch.set_num_threads(args.threads)
    from common.broker import publish_job
    from common.settings import get_settings
    from store.db import session_factory
    from store.migrate import upgrade
    from store.models import ArtifactKind
    from store.repositories import ArtifactRepository, JobRepository, TenantRepository

    settings = get_settings()
    upgrade(settings=settings)
    factory = session_factory(settings)
    with factory.begin() as s:
        tenant_id = TenantRepository(s).get_or_create("bench").id

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "cpu", "--pool", args.pool,
         "--concurrency", "1", "--without-mingle", "--without-gossip", "--loglevel", "WARNING"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    spec = job_spec(args.steps)
    # The worker replaces the spec's checkpoint cadence with its own; run the in-process
    # baseline with the same one so both sides do the same work.
    spec["inference"]["checkpoint_every_s"] = settings.worker.checkpoint_every_s
    inproc_loop, inproc_job, worker_loop, worker_job = [], [], [], []
    try:
        run_in_process(job_spec(50))  # warm imports and caches, like the worker's preload
        for i in range(args.repeats):
            loop, job = run_in_process(spec)
            inproc_loop.append(loop)
            inproc_job.append(job)

            with factory.begin() as s:
                job_id = JobRepository(s).create(tenant_id=tenant_id, spec=spec, max_attempts=1).id
            publish_job(job_id, "cpu", settings)
            deadline = time.monotonic() + 1800
            while True:
                with factory.begin() as s:
                    row = JobRepository(s).get(job_id)
                    if row.state in ("succeeded", "failed", "cancelled"):
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {job_id} did not finish")
                time.sleep(0.5)  # polling is load on the same cores: keep it light
            if row.state != "succeeded":
                raise SystemExit(f"job {job_id} ended {row.state}: {row.error}")
            with factory.begin() as s:
                meta = json.loads(ArtifactRepository(s).get_content(job_id, ArtifactKind.RESULT_JSON))["meta"]
            worker_loop.append(meta["steps_done"] / meta["train_s"])
            worker_job.append(args.steps / (row.finished_at - row.started_at).total_seconds())
            print(f"run {i + 1}/{args.repeats}: in-process {loop:8.1f} steps/s, worker {worker_loop[-1]:8.1f} "
                  f"steps/s (loop); job {job:6.1f} vs {worker_job[-1]:6.1f} steps/s", flush=True)
    finally:
        stop(worker)  # the worker's whole process group, TERM then KILL
        shutil.rmtree(home, ignore_errors=True)

    med = statistics.median
    paired_loop = [w / i for w, i in zip(worker_loop, inproc_loop)]
    paired_job = [w / i for w, i in zip(worker_job, inproc_job)]
    print(f"\nstore {database_url.split(':')[0]}, broker {broker_url.split(':')[0]}, {args.steps} steps, "
          f"{args.repeats} repeats, torch threads {args.threads}, pool {args.pool}")
    print(f"loop steps/s  median: in-process {med(inproc_loop):7.1f}  worker {med(worker_loop):7.1f}   "
          f"best: in-process {max(inproc_loop):7.1f}  worker {max(worker_loop):7.1f}")
    print(f"job  steps/s  median: in-process {med(inproc_job):7.1f}  worker {med(worker_job):7.1f}   "
          f"best: in-process {max(inproc_job):7.1f}  worker {max(worker_job):7.1f}")
    # On a shared machine single runs swing with other load; the median of the ratios of
    # adjacent pairs and the ratio of the best runs are the two load-robust readings.
    print(f"ratio worker/in-process (loop): median of pairs {med(paired_loop):.3f}, "
          f"best vs best {max(worker_loop) / max(inproc_loop):.3f}   (target >= 0.95)")
    print(f"ratio worker/in-process (job):  median of pairs {med(paired_job):.3f}, "
          f"best vs best {max(worker_job) / max(inproc_job):.3f}")

if __name__ == "__main__":
    main()
