"""Load-and-fault harness: submissions and polling from many clients, with faults injected.

Starts everything itself on spare 127.0.0.1 ports (nothing shared is touched): a private
Postgres cluster (``initdb``/``pg_ctl`` into a temp dir), a ``redis-server``, the API
(``uvicorn api.app:create_app --factory``), one Celery worker (prefork) and the sweeper.
Then, per scenario (``--faults``):

- idle baseline: ``GET /v1/jobs/{id}`` from ``--pollers`` concurrent pollers on an idle
  system, and ``POST /v1/jobs`` one at a time;
- load: ``--jobs`` submissions from ``--clients`` clients over two tenants (429/503 are
  retried after a short pause, as the SDK does), ``--pollers`` pollers reading the
  accepted jobs all the while; the fault (``postgres-restart``: stop 4 s, start;
  ``redis-restart``: kill the broker, start it again empty; ``none``) at ``--fault-at``
  seconds;
- drain: wait (``--drain-timeout``) for every accepted job to end.

Printed per scenario: accepted, terminal states, lost (acknowledged with 202 but not in
the database), stuck (not final after the drain), attempts histogram, 5xx count (and
other non-2xx statuses), p50/p99 of GET job and POST job idle vs loaded, and the loaded
GET p99 as a ratio of the idle one.

Usage::

    python bench/bench_load.py                              # 30 jobs, 6 clients, 4 pollers
    python bench/bench_load.py --faults none,postgres-restart,redis-restart --jobs 100

Every process it starts is stopped at the end (process groups), temp dirs removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the shared test models

from models import TINY_LINEAR_DATA  # noqa: E402
from models import TINY_LINEAR_SOURCE as LINEAR_SOURCE  # noqa: E402
FINAL = {"succeeded", "failed", "cancelled"}


def job_body(steps: int) -> dict[str, Any]:
    return {
        "model": {"source": LINEAR_SOURCE},
        "guide": {"auto": "AutoNormal"},
        "data": {"inline": dict(TINY_LINEAR_DATA)},
        "inference": {"steps": steps, "seed": random.randrange(1 << 30)},
        "outputs": {"num_samples": 10},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout_s:g} s")


# ---- servers ----------------------------------------------------------------------------


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        self.bin = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1].parent
        self.port = free_port()
        self.dir = root / "pg"
        self.dir.mkdir()
        self.data = self.dir / "data"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            shutil.chown(root, "postgres", "postgres")
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(f"{self.bin / 'initdb'} -D {self.data} -U postgres --auth=trust -E UTF8 >/dev/null")

    def _run(self, command: str) -> None:
        argv = ["su", "postgres", "-c", command] if self.as_postgres else ["bash", "-c", command]
        subprocess.run(argv, check=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=300 -c fsync=off")
        self._run(f"{self.bin / 'pg_ctl'} -D {self.data} -l {self.dir / 'log'} -o '{options}' -w -t 60 start >/dev/null")

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{self.bin / 'pg_ctl'} -D {self.data} -m {mode} -w -t 60 stop >/dev/null")


class Proc:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.argv, self.env, self.log_dir = argv, env, log_dir
        self.start()

    def start(self) -> None:
        self.log_path = self.log_dir / f"{self.name}-{uuid.uuid4().hex[:4]}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(self.argv, cwd=REPO_ROOT, env=self.env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
                self.popen.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)
        self._log.close()


class Stack:
    def __init__(self, root: Path, worker_concurrency: int) -> None:
        self.root = root
        self.pg = PrivatePostgres(root)
        self.pg.start()
        self.redis_port = free_port()
        self.redis = Proc("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no"], dict(os.environ), root)
        wait_for(lambda: socket.create_connection(("127.0.0.1", self.redis_port), 1).close() is None, 30, "redis")
        from store.migrate import upgrade

        upgrade(self.pg.url)
        self.api_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
        env.update({
            "PYTHONPATH": str(REPO_ROOT), "VIHUB_HOME": str(root / "home"),
            "VIHUB_DATABASE_URL": self.pg.url, "VIHUB_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "VIHUB_AUTH": "required", "VIHUB_LOG_LEVEL": "WARNING",
            "VIHUB_QUOTAS__MAX_CONCURRENT_JOBS": "8",
            "VIHUB_WORKER__LEASE_SECONDS": "20", "VIHUB_WORKER__HEARTBEAT_SECONDS": "4",
            "VIHUB_WORKER__SWEEPER_INTERVAL_S": "3", "VIHUB_WORKER__REQUEUE_AFTER_S": "10",
            "VIHUB_WORKER__SOFT_TIME_LIMIT_S": "300", "VIHUB_WORKER__HARD_TIME_LIMIT_S": "320",
            "VIHUB_WORKER__VISIBILITY_TIMEOUT_S": "340", "OMP_NUM_THREADS": "1",
        })
        self.env = env
        self.api = Proc("api", [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                                "--host", "127.0.0.1", "--port", str(self.api_port), "--log-level", "warning"],
                        env, root)
        self.worker = Proc("worker", [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
                                      "--queues", "cpu", "--pool", "prefork", "--concurrency",
                                      str(worker_concurrency), "--loglevel", "WARNING"], env, root)
        # INFO: its one line per sweep that did something ("sweep: requeued=.. republished=..").
        self.sweeper = Proc("sweeper", [sys.executable, "-m", "worker.sweeper"], {**env, "VIHUB_LOG_LEVEL": "INFO"},
                            root)
        import httpx

        wait_for(lambda: httpx.get(self.base_url + "/readyz", timeout=5).status_code == 200, 180, "API")

    def tenant_key(self) -> tuple[str, str]:
        from sqlalchemy.orm import sessionmaker

        from common.keys import display_prefix, generate_api_key, hash_api_key
        from store.db import make_engine
        from store.repositories.api_keys import ApiKeyRepository
        from store.repositories.tenants import TenantRepository

        engine = make_engine(self.pg.url)
        try:
            key = generate_api_key()
            with sessionmaker(bind=engine, expire_on_commit=False).begin() as session:
                tenant = TenantRepository(session).create(f"bench-{uuid.uuid4().hex[:8]}")
                ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
            return tenant.id, key
        finally:
            engine.dispose()

    def jobs(self, ids: list[str]) -> dict[str, tuple[str, int]]:
        from sqlalchemy import select

        from store.db import make_engine
        from store.models import Job

        engine = make_engine(self.pg.url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(select(Job.id, Job.state, Job.attempts).where(Job.id.in_(ids)))
                return {row.id: (row.state, row.attempts) for row in rows}
        finally:
            engine.dispose()

    def fault(self, name: str) -> None:
        if name == "postgres-restart":
            self.pg.stop("fast")
            time.sleep(4)
            self.pg.start()
        elif name == "redis-restart":
            self.redis.stop(signal.SIGKILL)
            time.sleep(2)
            self.redis.start()
        elif name != "none":
            raise ValueError(f"unknown fault {name!r}")

    def close(self) -> None:
        for proc in (self.sweeper, self.worker, self.api, self.redis):
            try:
                proc.stop()
            except Exception:  # noqa: BLE001
                pass
        try:
            self.pg.stop("immediate")
        except Exception:  # noqa: BLE001
            pass


# ---- load ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))] * 1000


async def poll_for(client: Any, job_ids: list[str], headers: dict[str, str], stop: Any, count: int | None,
                   latencies: list[float], statuses: Counter) -> None:
    done = 0
    while not stop() and (count is None or done < count):
        if not job_ids:
            await asyncio.sleep(0.05)
            continue
        started = time.perf_counter()
        try:
            response = await client.get(f"/v1/jobs/{random.choice(job_ids)}", headers=headers)
            statuses[response.status_code] += 1
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001
            statuses[type(exc).__name__] += 1
            await asyncio.sleep(0.2)
        done += 1


async def submit_one(client: Any, body: dict[str, Any], headers: dict[str, str], latencies: list[float],
                     statuses: Counter, deadline: float) -> str | None:
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            response = await client.post("/v1/jobs", json=body, headers=headers)
        except Exception as exc:  # noqa: BLE001
            statuses[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            continue
        statuses[response.status_code] += 1
        if response.status_code in (200, 202):
            latencies.append(time.perf_counter() - started)
            return response.json()["id"]
        if response.status_code in (429, 503):
            await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0))
            continue
        return None  # anything else is a refusal (counted)
    return None


async def scenario(stack: Stack, fault: str, args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    tenants = [stack.tenant_key() for _ in range(2)]
    headers = [{"Authorization": f"Bearer {key}"} for _, key in tenants]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    out: dict[str, Any] = {"fault": fault}
    sweeper_log_from = stack.sweeper.log_path.stat().st_size
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=120, limits=limits) as client:
        # Idle baseline: a few submits one at a time, then GETs with nothing else running.
        # (One validate first: a fresh dry-run process imports torch on its first trace.)
        await client.post("/v1/validate", json=job_body(args.steps), headers=headers[0])
        idle_post: list[float] = []
        idle_ids = [await submit_one(client, job_body(args.steps), headers[0], idle_post, Counter(),
                                     time.monotonic() + 120) for _ in range(5)]
        idle_ids = [i for i in idle_ids if i]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(s not in FINAL for s, _ in stack.jobs(idle_ids).values()):
            await asyncio.sleep(0.5)
        idle_get: list[float] = []
        idle_status: Counter = Counter()
        await asyncio.gather(*(poll_for(client, idle_ids, headers[0], lambda: False, args.idle_requests,
                                        idle_get, idle_status) for _ in range(args.pollers)))

        # Load.
        accepted: list[tuple[str, int]] = []  # (job id, tenant index)
        post_lat: list[float] = []
        get_lat: list[float] = []
        post_status: Counter = Counter()
        get_status: Counter = Counter()
        finished = False
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(args.jobs):
            queue.put_nowait(n)
        submit_deadline = time.monotonic() + args.drain_timeout

        async def submitter() -> None:
            while not queue.empty():
                n = queue.get_nowait()
                tenant = n % 2
                job_id = await submit_one(client, job_body(args.steps), headers[tenant], post_lat, post_status,
                                          submit_deadline)
                if job_id:
                    accepted.append((job_id, tenant))

        ids_by_tenant: list[list[str]] = [[], []]

        async def track() -> None:
            seen = 0
            while not finished:
                for job_id, tenant in accepted[seen:]:
                    ids_by_tenant[tenant].append(job_id)
                seen = len(accepted)
                await asyncio.sleep(0.05)

        pollers = [asyncio.create_task(poll_for(client, ids_by_tenant[i % 2], headers[i % 2], lambda: finished,
                                                None, get_lat, get_status)) for i in range(args.pollers)]
        tracker = asyncio.create_task(track())
        fault_task = None
        started = time.monotonic()
        if fault != "none":
            async def inject() -> None:
                await asyncio.sleep(args.fault_at)
                await asyncio.to_thread(stack.fault, fault)

            fault_task = asyncio.create_task(inject())
        await asyncio.gather(*(submitter() for _ in range(args.clients)))
        submitted_s = time.monotonic() - started
        if fault_task is not None:
            await fault_task
        ids = [job_id for job_id, _ in accepted]
        deadline = time.monotonic() + args.drain_timeout
        states: dict[str, tuple[str, int]] = {}
        while time.monotonic() < deadline:
            try:
                states = await asyncio.to_thread(stack.jobs, ids)
            except Exception:  # noqa: BLE001 - the database may be restarting
                await asyncio.sleep(1)
                continue
            if len(states) == len(ids) and all(s in FINAL for s, _ in states.values()):
                break
            await asyncio.sleep(1)
        drained_s = time.monotonic() - started
        finished = True
        await asyncio.gather(*pollers, tracker)

    sweeps = stack.sweeper.log_path.read_text(errors="replace")[sweeper_log_from:]
    out.update(
        republished=sum(int(n) for n in re.findall(r"republished=(\d+)", sweeps)),
        requeued=sum(int(n) for n in re.findall(r"requeued=(\d+)", sweeps)),
        accepted=len(ids), submitted_s=submitted_s, drained_s=drained_s,
        terminal=Counter(s for s, _ in states.values() if s in FINAL),
        lost=len([i for i in ids if i not in states]),
        stuck=len([i for i, (s, _) in states.items() if s not in FINAL]),
        attempts=Counter(a for _, a in states.values()),
        post_status=post_status, get_status=get_status,
        fivexx=sum(v for k, v in (post_status + get_status + idle_status).items() if isinstance(k, int) and k >= 500),
        code500=(post_status + get_status + idle_status).get(500, 0),
        idle_get=(pct(idle_get, 0.5), pct(idle_get, 0.99), len(idle_get)),
        idle_post=(pct(idle_post, 0.5), pct(idle_post, 0.99), len(idle_post)),
        get=(pct(get_lat, 0.5), pct(get_lat, 0.99), len(get_lat)),
        post=(pct(post_lat, 0.5), pct(post_lat, 0.99), len(post_lat)),
    )
    return out


def report(result: dict[str, Any]) -> None:
    def ms(triple: tuple[float, float, int]) -> str:
        return f"p50 {triple[0]:7.1f} ms  p99 {triple[1]:7.1f} ms  (n={triple[2]})"

    print(f"\n== scenario: fault={result['fault']}")
    print(f"accepted      {result['accepted']}  (submitted in {result['submitted_s']:.1f} s, "
          f"drained in {result['drained_s']:.1f} s)")
    print(f"terminal      {dict(result['terminal'])}")
    print(f"lost          {result['lost']}")
    print(f"stuck         {result['stuck']}")
    print(f"attempts      {dict(sorted(result['attempts'].items()))}")
    print(f"sweeper       republished {result['republished']}, requeued {result['requeued']}")
    print(f"5xx           {result['fivexx']}  (of which 500: {result['code500']})")
    print(f"POST statuses {dict(result['post_status'])}")
    print(f"GET statuses  {dict(result['get_status'])}")
    print(f"GET job  idle   {ms(result['idle_get'])}")
    print(f"GET job  loaded {ms(result['get'])}")
    print(f"POST job idle   {ms(result['idle_post'])}")
    print(f"POST job loaded {ms(result['post'])}")
    if result["idle_get"][1] == result["idle_get"][1] and result["idle_get"][1] > 0:
        print(f"GET p99 loaded / idle: {result['get'][1] / result['idle_get'][1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--idle-requests", type=int, default=100, help="GETs per poller for the idle baseline")
    parser.add_argument("--faults", default="none,postgres-restart",
                        help="comma list of none, postgres-restart, redis-restart")
    parser.add_argument("--fault-at", type=float, default=3.0, help="seconds into the load phase")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--drain-timeout", type=float, default=240.0)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vihub-bench-load-"))
    os.chmod(root, 0o777)
    print(f"machine: {os.cpu_count()} CPUs; jobs={args.jobs} clients={args.clients} pollers={args.pollers} "
          f"steps={args.steps}; logs in {root}")
    stack = None
    try:
        stack = Stack(root, args.worker_concurrency)
        results = [asyncio.run(scenario(stack, fault, args)) for fault in args.faults.split(",")]
        for result in results:
            report(result)
        bad = [r["fault"] for r in results if r["lost"] or r["stuck"] or r["code500"]]
        print("\nOK: 0 lost, 0 stuck, 0 x 500 in every scenario" if not bad else f"\nNOT OK in: {bad}")
    finally:
        if stack is not None:
            stack.close()
        if os.environ.get("VIHUB_BENCH_KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
