"""API benchmark: job dispatch latency, fixed overhead, and GET-job latency under load.

Starts its own uvicorn (``api.app:create_app --factory``) and one Celery worker process on
127.0.0.1, against a fresh Postgres database + Redis (``--backend production``, default
when both are reachable) or the embedded SQLite + SQL broker (``--backend embedded``),
then prints:

1. dispatch latency: submit (``POST /v1/jobs`` sent) -> the job is ``running``
   (``started_at`` - client-side send time; includes the dry run), median over ``--jobs``;
2. fixed overhead: submit -> results downloadable, for a 1-step job, median; with the
   part spent inside ``POST /v1/jobs`` (dry run in the sandbox) shown separately;
3. ``GET /v1/jobs/{id}`` p50/p99 latency and requests/s under ``--pollers`` concurrent
   async pollers (own httpx load generator), against an idle-server baseline measured in
   the same run: ``GET /healthz`` under the same load. The ratios are the figures to
   compare across versions; absolute numbers depend on the machine;
4. the whole eight-schools example job (``--whole-jobs``, issue 12's target: ≤ 1.0 s),
   submit -> accurate summary downloaded, median, with its parts (the POST, accepted ->
   running, running -> finished, finished -> seen by the poll, the summary's download).

**What isolation costs** (figures 1 and 2, before and after, same run): with
``--baseline-ref REF`` (default ``a0576b7``, the last commit before every job and dry run
moved into a fresh process forked from a pre-warmed forkserver; ``none`` disables), the
script checks REF out into a temporary detached ``git worktree``, starts a second stack
from it (cwd and ``PYTHONPATH`` on the worktree, so uvicorn, the worker and the
migrations run the old code; same backend, its own fresh database / broker), and runs
the same 1-step jobs against both stacks in interleaved rounds (one job on each per
round, the order alternating), so machine load hits both alike. Each stack first runs
``--warmup`` unmeasured jobs (the forkserver / dry-run pool imports torch on first use;
those cold starts are printed, not counted). It prints both sets of medians and
"after - before" as a difference of medians, the median of the per-round differences and
a ratio. Figure 3 is measured on the current tree only, after the baseline stack is
stopped. The target (issue 9) is at most +50 ms median.

Usage::

    python bench/bench_api.py                       # defaults: 5 jobs, 16 pollers, 125 requests each
    python bench/bench_api.py --jobs 10             # before/after against a0576b7
    python bench/bench_api.py --backend embedded --baseline-ref none --pollers 32 --requests 4000

Only 127.0.0.1 is contacted. Every process it starts is stopped, every database it
creates dropped and the worktree removed at the end, also on an error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE_REF = "a0576b7"
ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

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


def _pick_redis_dbs(count: int) -> list[int]:
    """``count`` distinct Redis database numbers in 1..15, empty ones preferred."""
    candidates = list(range(1, 16))
    random.shuffle(candidates)
    with contextlib.suppress(Exception):
        import redis

        empty = [db for db in candidates if redis.Redis(host="127.0.0.1", port=6379, db=db).dbsize() == 0]
        candidates = empty + [db for db in candidates if db not in empty]
    return candidates[:count]


# Run by each stack's own interpreter, in its tree: migrate, and make an API key.
_SETUP = """
import sys
from store.migrate import upgrade
database_url, make_key = sys.argv[1], sys.argv[2] == "1"
upgrade(database_url)
if make_key:
    from sqlalchemy.orm import sessionmaker
    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.db import make_engine
    from store.repositories import ApiKeyRepository, TenantRepository
    engine = make_engine(database_url)
    key = generate_api_key()
    with sessionmaker(bind=engine).begin() as session:
        tenant = TenantRepository(session).create("bench")
        ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
    engine.dispose()
    print("KEY=" + key)
"""

_LOG_TROUBLE = re.compile(rb"Traceback|\bERROR\b|\bCRITICAL\b|WorkerLostError|Exception|\bFAILURE\b|failed")


class Stack:
    """uvicorn + one Celery worker from source tree ``tree`` on a fresh store.

    Migrations and the API key are made by a subprocess running ``tree``'s code, so a
    baseline stack never imports the current tree. ``close()`` stops and cleans up.
    """

    def __init__(self, backend: str, tree: Path = REPO, label: str = "current", redis_db: int | None = None,
                 keep_logs: bool = False) -> None:
        self.backend = backend
        self.tree = tree
        self.label = label
        self.keep_logs = keep_logs
        self.closed = False
        self.home = Path(tempfile.mkdtemp(prefix=f"vihub-bench-{label.split()[0]}-"))
        self.procs: list[subprocess.Popen] = []
        self.pg_db: str | None = None
        self.headers: dict[str, str] = {}
        self.broker_url = ""
        if backend == "production":
            from sqlalchemy import create_engine, text

            self.database_url = ""
            self.broker_url = f"redis://127.0.0.1:6379/{redis_db or 1 + secrets.randbelow(15)}"
            pg_db = f"vihub_bench_{secrets.token_hex(4)}"
            admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{pg_db}"'))
                self.pg_db = pg_db
            finally:
                admin.dispose()
            self.database_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.pg_db}"
        else:
            self.database_url = f"sqlite:///{self.home / 'vihub.sqlite3'}"
            self.broker_url = f"sqla+sqlite:///{self.home / 'broker.sqlite3'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
        self.env.update({
            "VIHUB_DATABASE_URL": self.database_url, "VIHUB_BROKER_URL": self.broker_url,
            "VIHUB_HOME": str(self.home), "VIHUB_AUTH": "required" if backend == "production" else "disabled",
            "VIHUB_QUOTAS__MAX_CONCURRENT_JOBS": "1000", "VIHUB_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
        })

    def _setup(self) -> None:
        make_key = self.backend == "production"
        done = subprocess.run([sys.executable, "-c", _SETUP, self.database_url, "1" if make_key else "0"],
                              env=self.env, cwd=self.tree, check=False, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"[{self.label}] migrate/key setup failed:\n{done.stderr[-3000:]}")
        if make_key:
            key = next(line[4:] for line in done.stdout.splitlines() if line.startswith("KEY="))
            self.headers = {"Authorization": f"Bearer {key}"}

    def launch(self) -> None:
        """Migrate, then start the worker and the API (without waiting for them)."""
        self._setup()
        worker_log = open(self.home / "worker.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", "cpu",
             "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
             "--without-mingle", "--without-gossip", "--hostname", f"bench-{secrets.token_hex(3)}@%h"],
            env=self.env, cwd=self.tree, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True))
        self.port = _free_port()
        api_log = open(self.home / "api.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            env=self.env, cwd=self.tree, stdout=api_log, stderr=subprocess.STDOUT, start_new_session=True))
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"[{self.label}] {proc.args[2]} exited ({proc.returncode}); see {self.home}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200 and \
                        b" ready." in (self.home / "worker.log").read_bytes():
                    return self.base
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"[{self.label}] stack did not start; see {self.home}")

    def start(self) -> str:
        self.launch()
        return self.wait_ready()

    def check_tree(self) -> str:
        """Where the servers' ``api`` package comes from, as that tree's interpreter sees it."""
        done = subprocess.run([sys.executable, "-c", "import api, worker; print(api.__file__)"],
                              env=self.env, cwd=self.tree, check=False, capture_output=True, text=True, timeout=120)
        return done.stdout.strip() or done.stderr.strip()[-300:]

    def log_trouble(self) -> list[str]:
        """Lines of the servers' logs that look like errors, with their log's name."""
        found = []
        for name in ("api.log", "worker.log"):
            path = self.home / name
            if not path.exists():
                continue
            for line in path.read_bytes().splitlines():
                if _LOG_TROUBLE.search(line):
                    found.append(f"{name}: {line.decode(errors='replace')[:300]}")
        return found

    def close(self) -> None:
        """Stop the processes, drop the database, flush the broker; a second call does nothing."""
        if self.closed:
            return
        self.closed = True
        # SIGTERM to the servers themselves (not their process groups): Celery's main process
        # then shuts its pool down as in production, and each server stops its forkserver.
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            # Anything left in the process group (forkserver, sandbox children): kill it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self.pg_db:
            from sqlalchemy import create_engine, text

            admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)'))
            finally:
                admin.dispose()
            self.pg_db = None
        if self.broker_url.startswith("redis://"):
            with contextlib.suppress(Exception):
                import redis

                redis.Redis.from_url(self.broker_url).flushdb()
        trouble = self.log_trouble()
        if trouble:
            print(f"[{self.label}] {len(trouble)} error-like line(s) in the servers' logs ({self.home}):",
                  file=sys.stderr)
            for line in trouble[:20]:
                print("   ", line, file=sys.stderr)
        if self.keep_logs or trouble:
            print(f"[{self.label}] logs kept in {self.home}", file=sys.stderr)
            for name in ("vihub.sqlite3", "broker.sqlite3"):  # the embedded databases go anyway
                for path in self.home.glob(name + "*"):
                    path.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.home, ignore_errors=True)


class Worktree:
    """A temporary detached ``git worktree`` of ``ref``; ``close()`` removes it."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.parent = Path(tempfile.mkdtemp(prefix="vihub-bench-worktree-"))
        self.path = self.parent / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(self.path), ref],
                       check=True, capture_output=True, text=True)
        self.commit = subprocess.run(["git", "-C", str(self.path), "rev-parse", "--short", "HEAD"],
                                     check=True, capture_output=True, text=True).stdout.strip()

    def close(self) -> None:
        done = subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(self.path)],
                              check=False, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(self.path, ignore_errors=True)
            subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=False, capture_output=True)
        shutil.rmtree(self.parent, ignore_errors=True)


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_one_job(client: httpx.Client, seed: int) -> dict[str, Any]:
    """Submit one 1-step job and time its phases (seconds)."""
    body = dict(ONE_STEP_JOB, inference={**ONE_STEP_JOB["inference"], "seed": seed})
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
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['state']}: {job}")
    while client.get(f"/v1/jobs/{job_id}/summary").status_code != 200:
        time.sleep(0.01)
    t_results = time.perf_counter()
    # started_at is the server's clock; same machine, so comparable with time.time().
    # The worker may claim the job before the 202 reaches the client (publish happens
    # right after the commit), so dispatch is measured from the moment the POST is sent.
    in_worker = _parse_time(job["finished_at"]) - started_at if job.get("finished_at") and started_at else 0.0
    return {"id": job_id, "dispatch": started_at - t_submit, "overhead": t_results - t0,
            "submit_call": t_accepted - t0, "in_worker": in_worker}


def run_whole_eight_schools(client: httpx.Client, seed: int) -> dict[str, Any]:
    """The catalog's eight-schools example job exactly as a user submits it (its default
    steps and the server's defaults for everything else), timed from the POST to the
    summary downloaded; with mu's and tau's posterior means against the reference's.

    The parts (``WHOLE_PARTS``), from the client's clock and the job's server-side
    ``started_at``/``finished_at`` (same machine, so one clock): the POST (dry run +
    commit + publish), accepted -> ``running`` (broker dispatch, the worker's claim),
    ``running`` -> ``finished`` (the sandboxed fit, its outputs and the final write),
    finished -> seen by the client's poll, and the summary's download."""
    entry = client.get("/v1/catalog/eight_schools_noncentered").json()
    body = entry["example_job"]
    body["inference"] = {**body.get("inference", {}), "seed": seed}
    t_wall = time.time()
    t0 = time.perf_counter()
    response = client.post("/v1/jobs", json=body)
    t_accepted = time.perf_counter()
    response.raise_for_status()
    job_id = response.json()["id"]
    while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(0.01)
    t_seen = time.perf_counter()
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['state']}: {job}")
    while (summary := client.get(f"/v1/jobs/{job_id}/summary")).status_code != 200:
        time.sleep(0.01)
    t_done = time.perf_counter()
    seconds = t_done - t0
    reference = entry.get("reference", {}).get("posterior", {})
    posterior = summary.json()["summary"]
    # Within 0.2 reference sd of the reference mean: the accuracy the engine bench uses.
    accurate = all(abs(posterior[site]["mean"] - ref["mean"]) <= 0.2 * ref["sd"] for site, ref in reference.items())
    # Server timestamps on the client's perf_counter scale (the wall clock at t0 is t_wall).
    started = _parse_time(job["started_at"]) - t_wall + t0
    finished = _parse_time(job["finished_at"]) - t_wall + t0
    parts = {"submit": t_accepted - t0, "to_running": started - t_accepted, "running": finished - started,
             "to_seen": t_seen - finished, "summary": t_done - t_seen}
    return {"seconds": seconds, "accurate": accurate, "steps": (job.get("progress") or {}).get("step"), **parts}


WHOLE_PARTS = {
    "submit": "POST /v1/jobs (dry run + commit + publish)",
    "to_running": "accepted -> running (broker dispatch + claim)",
    "running": "running -> finished (sandboxed fit + outputs + final write)",
    "to_seen": "finished -> seen by the client's GET poll",
    "summary": "GET /summary (download)",
}


def run_whole_eight_schools_sdk(stack: Stack, seed: int) -> dict[str, Any]:
    """The same job as a user of the Python SDK runs it: ``client.submit(...)``,
    ``job.wait()`` (the server-sent event stream) and ``job.summary()``."""
    import vihub_client as vc

    api_key = stack.headers.get("Authorization", "").removeprefix("Bearer ") or None
    with vc.Client(stack.base, api_key=api_key) as client:
        body = httpx.get(f"{stack.base}/v1/catalog/eight_schools_noncentered").json()["example_job"]
        t0 = time.perf_counter()
        job = client.submit(body["model"], guide=body.get("guide"), data=body["data"]["inline"],
                            inference={**body.get("inference", {}), "seed": seed}, outputs=body.get("outputs"))
        job.wait(timeout=120, progress=False)
        summary = job.summary()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "accurate": bool(summary), "steps": job.progress.step}


def measure_whole_jobs(runners: list[Runner], jobs: int, sdk: bool = False) -> dict[str, list[dict[str, Any]]]:
    """``jobs`` whole eight-schools jobs per stack, rounds interleaved like the 1-step ones."""
    timings: dict[str, list[dict[str, Any]]] = {r.stack.label: [] for r in runners}
    for i in range(jobs):
        order = runners if i % 2 == 0 else list(reversed(runners))
        for runner in order:
            timing = (run_whole_eight_schools_sdk(runner.stack, 2000 + i) if sdk
                      else run_whole_eight_schools(runner.client, 1000 + i))
            timings[runner.stack.label].append(timing)
    return timings


METRICS = ("dispatch", "overhead", "submit_call", "in_worker")
LABELS = {
    "dispatch": "dispatch latency (submit -> running)",
    "overhead": "fixed overhead (submit -> results, 1 step)",
    "submit_call": "  of which POST /v1/jobs (dry run + commit)",
    "in_worker": "  of which in the worker (running -> finished)",
}


class Runner:
    """One stack, its client, and its warm-up and measured timings."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(base_url=stack.base, headers=stack.headers, timeout=120)
        self.warmup: list[dict[str, Any]] = []
        self.measured: list[dict[str, Any]] = []
        self.seed = 0

    def job(self, measured: bool) -> dict[str, Any]:
        timing = run_one_job(self.client, self.seed)
        self.seed += 1
        (self.measured if measured else self.warmup).append(timing)
        return timing

    def median(self, metric: str) -> float:
        return statistics.median(t[metric] for t in self.measured)

    def close(self) -> None:
        self.client.close()


def measure_interleaved(runners: list[Runner], jobs: int, warmup: int) -> None:
    """Warm-up jobs, then ``jobs`` rounds of one job per runner, the order alternating."""
    for r in range(warmup):
        for runner in (runners if r % 2 == 0 else runners[::-1]):
            runner.job(measured=False)
    for r in range(jobs):
        for runner in (runners if r % 2 == 0 else runners[::-1]):
            runner.job(measured=True)


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


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _current_tree_label() -> str:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          check=False, capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":!bench"],
                           check=False, capture_output=True, text=True).stdout.strip()
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def _print_cold_start_check(runner: Runner) -> None:
    ms = [1000 * t["overhead"] for t in runner.measured]
    warm = ", ".join(f"{1000 * t['overhead']:.0f}" for t in runner.warmup) or "none"
    med = statistics.median(ms)
    note = ""
    if len(ms) > 2 and ms[0] > 2 * statistics.median(ms[1:]):
        note = "  <-- first measured job >2x the rest: cold start not absorbed?"
    elif len(runner.warmup) > 1 and 1000 * runner.warmup[-1]["overhead"] > 2000 and med > 500:
        # The warm-up did not make later jobs cheap: each job pays a start-up of its own
        # (e.g. a fresh process importing what its parent never imported).
        note = "  <-- warm-ups did not help: every job pays a start-up of its own"
    print(f"  {runner.stack.label}: warm-up overhead {warm} ms; measured overhead "
          f"min {min(ms):.0f} / median {med:.0f} / max {max(ms):.0f} ms; first measured {ms[0]:.0f} ms{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_backend = "production" if _port_open(5432) and _port_open(6379) else "embedded"
    parser.add_argument("--backend", choices=["production", "embedded"], default=default_backend)
    parser.add_argument("--jobs", type=int, default=5, help="measured 1-step jobs per stack")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured warm-up jobs per stack (>= 1)")
    parser.add_argument("--baseline-ref", default=DEFAULT_BASELINE_REF,
                        help=f"git ref to compare the job figures with (default {DEFAULT_BASELINE_REF}, "
                             "before process isolation); 'none' disables")
    parser.add_argument("--pollers", type=int, default=16, help="concurrent async pollers")
    parser.add_argument("--requests", type=int, default=125, help="requests per poller")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time bound per load phase")
    parser.add_argument("--whole-jobs", type=int, default=3,
                        help="whole eight-schools example jobs per stack (submit -> summary); 0 skips")
    parser.add_argument("--sdk-jobs", type=int, default=0,
                        help="also run the whole example job this many times per stack through the Python "
                             "SDK (submit, wait() over server-sent events, summary())")
    parser.add_argument("--per-job", action="store_true", help="print every job's timings")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (kept anyway on errors)")
    args = parser.parse_args()
    if args.jobs < 1 or args.warmup < 1:
        parser.error("--jobs and --warmup must be >= 1")
    baseline_ref = None if args.baseline_ref.lower() == "none" else args.baseline_ref

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)

    cleanup = contextlib.ExitStack()
    current_label = f"current (isolation) {_current_tree_label()}"
    baseline_label = ""
    runners: list[Runner] = []
    baseline_runner: Runner | None = None
    errors: list[str] = []

    def closing(what: str, fn: Any) -> None:
        def call() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 -- keep cleaning up the rest
                errors.append(f"cleanup of {what} failed: {exc!r}")
        cleanup.callback(call)

    try:
        redis_dbs = _pick_redis_dbs(2) if args.backend == "production" else [None, None]
        stacks: list[Stack] = []
        if baseline_ref:
            worktree = Worktree(baseline_ref)
            closing("worktree", worktree.close)
            # The default baseline is the tree before process isolation (issue 9).
            baseline_label = f"baseline {baseline_ref}" + (" (no isolation)" if baseline_ref == DEFAULT_BASELINE_REF
                                                            else "")
            if worktree.commit not in baseline_ref:
                baseline_label += f" [{worktree.commit}]"
            base_stack = Stack(args.backend, worktree.path, baseline_label, redis_dbs[1], args.keep_logs)
            closing(baseline_label, base_stack.close)
            stacks.append(base_stack)
        current = Stack(args.backend, REPO, current_label, redis_dbs[0], args.keep_logs)
        closing(current_label, current.close)
        stacks.append(current)
        for stack in stacks:
            stack.launch()
        for stack in stacks:
            stack.wait_ready()
            source = stack.check_tree()
            if not source.startswith(str(stack.tree)):
                raise RuntimeError(f"[{stack.label}] imports api from {source}, not from {stack.tree}")
            runner = Runner(stack)
            closing(f"{stack.label} client", runner.close)
            runners.append(runner)
        current_runner = runners[-1]
        if baseline_ref:
            baseline_runner = runners[0]
        # Rounds: baseline first on even rounds, current first on odd ones.
        measure_interleaved(runners, args.jobs, args.warmup)
        whole = measure_whole_jobs(runners, args.whole_jobs) if args.whole_jobs else {}
        via_sdk = measure_whole_jobs(runners, args.sdk_jobs, sdk=True) if args.sdk_jobs else {}
        job_id = current_runner.measured[-1]["id"]
        if baseline_runner is not None:  # stop the baseline before the load test (not about isolation)
            baseline_runner.close()
            baseline_runner.stack.close()
        health = asyncio.run(load(current.base, "/healthz", current.headers, args.pollers, args.requests,
                                  args.max_seconds))
        polled = asyncio.run(load(current.base, f"/v1/jobs/{job_id}", current.headers, args.pollers,
                                  args.requests, args.max_seconds))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not abort the cleanup
        cleanup.close()
        for message in errors:
            print(message, file=sys.stderr)

    def ms(value: float) -> str:
        return f"{1000 * value:8.1f} ms"

    print()
    print(f"vihub API benchmark — backend={args.backend}, {args.jobs} measured 1-step jobs per stack "
          f"(after {args.warmup} unmeasured warm-up jobs), medians")
    if baseline_runner is None:
        for metric in METRICS:
            print(f"  {LABELS[metric] + ', median':56s} {ms(current_runner.median(metric))}")
    else:
        print(f"  rounds interleaved (one job on each stack per round, order alternating); "
              f"tree of the current stack: {_current_tree_label()}")
        w = 44
        print(f"  {'':{w}s} {'before':>11s} {'after':>11s} {'after - before':>15s} {'paired':>10s} {'ratio':>7s}")
        print(f"  {'':{w}s} {'(baseline)':>11s} {'(current)':>11s} {'(medians)':>15s} {'median':>10s} "
              f"{'after/':>7s}")
        print(f"  {'':{w}s} {'':>11s} {'':>11s} {'':>15s} {'of diffs':>10s} {'before':>7s}")
        for metric in METRICS:
            before = baseline_runner.median(metric)
            after = current_runner.median(metric)
            paired = statistics.median(c[metric] - b[metric]
                                       for b, c in zip(baseline_runner.measured, current_runner.measured))
            print(f"  {LABELS[metric]:{w}s} {1000 * before:8.1f} ms {1000 * after:8.1f} ms "
                  f"{1000 * (after - before):+12.1f} ms {1000 * paired:+7.1f} ms {after / before:6.2f}x")
        print(f"  before = {baseline_runner.stack.label}")
        print(f"  after  = {current_runner.stack.label}")
        for metric in ("dispatch", "overhead"):
            delta = 1000 * (current_runner.median(metric) - baseline_runner.median(metric))
            verdict = "within" if delta <= 50 else "OVER"
            print(f"  target <= +50 ms median: {LABELS[metric].strip()}: {delta:+.1f} ms -> {verdict} target")
    for label, runs in whole.items():
        med = statistics.median(r["seconds"] for r in runs)
        print(f"  whole eight-schools example job (submit -> summary downloaded), {label}: median {med:.2f} s "
              f"over {len(runs)}; steps {[r['steps'] for r in runs]}; accurate (means within 0.2 ref sd) "
              f"{sum(r['accurate'] for r in runs)}/{len(runs)}; target <= 1.0 s -> "
              f"{'met' if med <= 1.0 else 'NOT met'}")
        for part, text in WHOLE_PARTS.items():
            values = [r[part] for r in runs]
            print(f"    {text:60s} median {1000 * statistics.median(values):7.1f} ms  "
                  f"(min {1000 * min(values):.0f}, max {1000 * max(values):.0f})")
    for label, runs in via_sdk.items():
        med = statistics.median(r["seconds"] for r in runs)
        print(f"  the same job through the Python SDK (submit, wait() over SSE, summary()), {label}: median "
              f"{med:.2f} s over {len(runs)}; each {[round(r['seconds'], 2) for r in runs]}")
    print("  cold-start check (warm-up jobs are not counted):")
    for runner in ([baseline_runner] if baseline_runner else []) + [current_runner]:
        _print_cold_start_check(runner)
    if args.per_job:
        for label, runs in whole.items():
            print(f"  per whole job, {label} (total / " + " / ".join(WHOLE_PARTS) + ", ms):")
            for r in runs:
                print("    " + " ".join(f"{1000 * r[k]:8.1f}" for k in ("seconds", *WHOLE_PARTS)))
        for runner in ([baseline_runner] if baseline_runner else []) + [current_runner]:
            print(f"  per job, {runner.stack.label} (dispatch / overhead / POST / in worker, ms):")
            for kind, timings in (("warm-up", runner.warmup), ("measured", runner.measured)):
                for t in timings:
                    print(f"    {kind:8s} " + " ".join(f"{1000 * t[m]:8.1f}" for m in METRICS))
    print(f"  GET latency under load ({args.pollers} pollers), current tree only:")
    print(f"  GET /healthz   (idle baseline): p50 {health['p50_ms']:6.2f} ms  p99 {health['p99_ms']:6.2f} ms"
          f"  {health['rps']:8.0f} req/s  (n={health['n']})")
    print(f"  GET /v1/jobs/{{id}}            : p50 {polled['p50_ms']:6.2f} ms  p99 {polled['p99_ms']:6.2f} ms"
          f"  {polled['rps']:8.0f} req/s  (n={polled['n']})")
    print(f"  ratio GET job / healthz: p50 x{polled['p50_ms'] / health['p50_ms']:.2f}, "
          f"throughput {polled['rps'] / health['rps']:.2f} of baseline")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; everything the bench started has been stopped and removed", file=sys.stderr)
        sys.exit(130)
