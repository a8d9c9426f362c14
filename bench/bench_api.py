"""API benchmark: job dispatch latency, fixed overhead, and GET-job latency under load.

Starts its own uvicorn (``api.app:create_app --factory``) and one Celery worker process on
127.0.0.1, against a fresh Postgres database + Redis (``--backend production``, default
when both are reachable) or the embedded SQLite + SQL broker (``--backend embedded``),
then prints:

1. dispatch latency: submit (``POST /v1/jobs`` sent) -> the job is ``running``
   (``started_at`` - client-side send time; includes the dry run), median over ``--jobs``;
2. fixed overhead: submit -> results downloadable, for a 1-step job, median; with the
   part spent inside ``POST /v1/jobs`` (dry run in the process pool) shown separately;
3. ``GET /v1/jobs/{id}`` p50/p99 latency and requests/s under ``--pollers`` concurrent
   async pollers (own httpx load generator), against an idle-server baseline measured in
   the same run: ``GET /healthz`` under the same load. The ratios are the figures to
   compare across versions; absolute numbers depend on the machine.

Usage::

    python bench/bench_api.py                       # defaults: 5 jobs, 16 pollers, 2000 requests each
    python bench/bench_api.py --backend embedded --pollers 32 --requests 4000

Only 127.0.0.1 is contacted. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ONE_STEP_JOB = {
    "model": {"catalog": "eight_schools_noncentered"},
    "guide": {"auto": "AutoNormal"},
    "inference": {"steps": 1, "seed": 0},
    "outputs": {"num_samples": 10, "log_prob_draws": 10, "elbo_terms_every": 0, "grad_norms_every": 0},
}


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """uvicorn + one Celery worker on a fresh store; ``close()`` stops and cleans up."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.home = Path(tempfile.mkdtemp(prefix="vihub-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.pg_db: str | None = None
        self.headers: dict[str, str] = {}
        if backend == "production":
            from sqlalchemy import create_engine, text

            self.pg_db = f"vihub_bench_{secrets.token_hex(4)}"
            admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.pg_db}"'))
            admin.dispose()
            self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.pg_db}"
            self.broker_url = f"redis://127.0.0.1:6379/{1 + secrets.randbelow(15)}"
        else:
            self.database_url = f"sqlite:///{self.home / 'vihub.sqlite3'}"
            self.broker_url = f"sqla+sqlite:///{self.home / 'broker.sqlite3'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
        self.env.update({
            "VIHUB_DATABASE_URL": self.database_url, "VIHUB_BROKER_URL": self.broker_url,
            "VIHUB_HOME": str(self.home), "VIHUB_AUTH": "required" if backend == "production" else "disabled",
            "VIHUB_QUOTAS__MAX_CONCURRENT_JOBS": "1000", "VIHUB_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
        })

    def start(self) -> str:
        from store.migrate import upgrade

        upgrade(self.database_url)
        if self.backend == "production":
            self.headers = {"Authorization": f"Bearer {self._make_key()}"}
        worker_log = open(self.home / "worker.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", "cpu",
             "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
             "--without-mingle", "--without-gossip", "--hostname", f"bench-{secrets.token_hex(3)}@%h"],
            env=self.env, cwd=REPO, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True))
        port = _free_port()
        api_log = open(self.home / "api.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--no-access-log"],
            env=self.env, cwd=REPO, stdout=api_log, stderr=subprocess.STDOUT, start_new_session=True))
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200 and \
                        b" ready." in (self.home / "worker.log").read_bytes():
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("stack did not start; see " + str(self.home))

    def _make_key(self) -> str:
        from sqlalchemy.orm import sessionmaker

        from store.db import make_engine
        from store.repositories import ApiKeyRepository, TenantRepository
        from store.security import display_prefix, generate_api_key, hash_api_key

        engine = make_engine(self.database_url)
        key = generate_api_key()
        with sessionmaker(bind=engine).begin() as session:
            tenant = TenantRepository(session).create("bench")
            ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
        engine.dispose()
        return key

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self.pg_db:
            from sqlalchemy import create_engine, text

            admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)'))
            admin.dispose()
        if self.broker_url.startswith("redis://"):
            try:
                import redis

                redis.Redis.from_url(self.broker_url).flushdb()
            except Exception:
                pass


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def measure_jobs(client: httpx.Client, jobs: int) -> dict[str, list[float]]:
    """Submit 1-step jobs one at a time; time each phase."""
    dispatch, overhead, submit_call = [], [], []
    for i in range(jobs + 1):  # job 0 warms the worker and the dry-run pool
        body = dict(ONE_STEP_JOB, inference={**ONE_STEP_JOB["inference"], "seed": i})
        t_submit = time.time()
        t0 = time.perf_counter()
        response = client.post("/v1/jobs", json=body)
        t_accepted = time.perf_counter()
        response.raise_for_status()
        job_id = response.json()["id"]
        started_at = None
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if started_at is None and job["started_at"]:
                started_at = _parse_time(job["started_at"])
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.01)
        assert job["state"] == "succeeded", job
        while client.get(f"/v1/jobs/{job_id}/summary").status_code != 200:
            time.sleep(0.01)
        t_results = time.perf_counter()
        if i == 0:
            continue
        # started_at is the server's clock; same machine, so comparable with time.time().
        # The worker may claim the job before the 202 reaches the client (publish happens
        # right after the commit), so dispatch is measured from the moment the POST is sent.
        dispatch.append(started_at - t_submit)
        submit_call.append(t_accepted - t0)
        overhead.append(t_results - t0)
    return {"dispatch": dispatch, "overhead": overhead, "submit_call": submit_call}


async def load(base: str, path: str, headers: dict[str, str], pollers: int, requests: int,
               max_seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=pollers, max_keepalive_connections=pollers)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
        async def poller() -> None:
            for _ in range(requests):
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")

        for _ in range(min(50, requests)):  # warm the connections
            await client.get(path)
        start = time.perf_counter()
        await asyncio.gather(*(poller() for _ in range(pollers)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "n": len(latencies),
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "rps": len(latencies) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_backend = "production" if _port_open(5432) and _port_open(6379) else "embedded"
    parser.add_argument("--backend", choices=["production", "embedded"], default=default_backend)
    parser.add_argument("--jobs", type=int, default=5, help="1-step jobs for the dispatch figures")
    parser.add_argument("--pollers", type=int, default=16, help="concurrent async pollers")
    parser.add_argument("--requests", type=int, default=125, help="requests per poller")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time bound per load phase")
    args = parser.parse_args()

    stack = Stack(args.backend)
    try:
        base = stack.start()
        with httpx.Client(base_url=base, headers=stack.headers, timeout=60) as client:
            timings = measure_jobs(client, args.jobs)
            job_id = client.get("/v1/jobs", params={"limit": 1}).json()["items"][0]["id"]
        baseline = asyncio.run(load(base, "/healthz", stack.headers, args.pollers, args.requests, args.max_seconds))
        polled = asyncio.run(load(base, f"/v1/jobs/{job_id}", stack.headers, args.pollers, args.requests,
                                  args.max_seconds))
    finally:
        stack.close()

    def ms(values: list[float]) -> str:
        return f"{1000 * statistics.median(values):8.1f} ms"

    print(f"vihub API benchmark — backend={args.backend}, {args.jobs} jobs, {args.pollers} pollers")
    print(f"  dispatch latency (submit -> running), median      {ms(timings['dispatch'])}")
    print(f"  fixed overhead (submit -> results, 1 step), median {ms(timings['overhead'])}")
    print(f"    of which POST /v1/jobs (dry run + commit), median {ms(timings['submit_call'])}")
    print(f"  GET /healthz   (idle baseline): p50 {baseline['p50_ms']:6.2f} ms  p99 {baseline['p99_ms']:6.2f} ms"
          f"  {baseline['rps']:8.0f} req/s  (n={baseline['n']})")
    print(f"  GET /v1/jobs/{{id}}            : p50 {polled['p50_ms']:6.2f} ms  p99 {polled['p99_ms']:6.2f} ms"
          f"  {polled['rps']:8.0f} req/s  (n={polled['n']})")
    print(f"  ratio GET job / healthz: p50 x{polled['p50_ms'] / baseline['p50_ms']:.2f}, "
          f"throughput {polled['rps'] / baseline['rps']:.2f} of baseline")


if __name__ == "__main__":
    main()
