"""A real vihub server for the browser tests: uvicorn (the API app with the dashboard
router) and a separate Celery worker process, against a fresh Postgres database and a
Redis database of their own, with an API key created through the store.

``python tests/dashboard/live_server.py`` runs one in the foreground for hand testing and
prints its URL and key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
PG_ADMIN_URL = os.environ.get("VIHUB_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base_url: str
    api_key: str
    database_url: str
    log_dir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(self.log_dir.glob("*.log")))


def _create_database() -> tuple[str, str]:
    import psycopg

    name = f"vihub_dashboard_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_redis_db() -> int:
    """A Redis database index nobody is using, so that no other test's worker can take
    our jobs off the shared ``cpu`` queue (and ours cannot take theirs)."""
    import redis

    candidates = list(range(1, 16))
    secrets.SystemRandom().shuffle(candidates)
    for index in candidates:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index)
        try:
            if client.dbsize() == 0:
                client.set("vihub-dashboard-tests-claim", "1", ex=3600)
                return index
        finally:
            client.close()
    raise RuntimeError("no empty Redis database (1-15) for the dashboard tests")


def _flush_redis_db(index: int) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index)
    try:
        client.flushdb()
    finally:
        client.close()


def _create_api_key(database_url: str) -> str:
    from sqlalchemy.orm import Session

    from store.db import make_engine
    from store.repositories.api_keys import ApiKeyRepository
    from store.repositories.tenants import TenantRepository
    from store.security import display_prefix, generate_api_key, hash_api_key

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            tenant = TenantRepository(session).get_or_create("dashboard-tests")
            key = generate_api_key()
            ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key), name="browser tests")
            session.commit()
        return key
    finally:
        engine.dispose()


def _wait_http(url: str, processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in processes:
            if p.poll() is not None:
                raise RuntimeError(f"a server process exited early with code {p.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def running_server(log_dir: Path, *, database_url: str | None = None, broker_url: str | None = None) -> Iterator[Server]:
    """Start migrate + API + worker; yield a ``Server``; stop and clean up everything."""
    log_dir.mkdir(parents=True, exist_ok=True)
    created_db = None
    redis_db = None
    if database_url is None:
        created_db, database_url = _create_database()
    if broker_url is None:
        redis_db = _empty_redis_db()
        broker_url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}"
    env = {
        **os.environ,
        "VIHUB_DATABASE_URL": database_url,
        "VIHUB_BROKER_URL": broker_url,
        "VIHUB_AUTH": "required",
        "VIHUB_HOME": str(log_dir / "home"),
        "VIHUB_WORKER__PROGRESS_EVERY_S": "0.3",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # Two cores shared with other work: keep torch to one thread.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run([sys.executable, "-c", "from store.migrate import upgrade; upgrade()"],
                       cwd=REPO, env=env, check=True, timeout=120,
                       stdout=open(log_dir / "migrate.log", "w"), stderr=subprocess.STDOUT)
        api_key = _create_api_key(database_url)
        port = free_port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(REPO / "tests" / "dashboard"), "dashboard_app:create_app",
             "--factory", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=REPO, env=env, stdout=open(log_dir / "api.log", "w"), stderr=subprocess.STDOUT))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "cpu", "--pool", "solo",
             "--concurrency", "1", "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=REPO, env=env, stdout=open(log_dir / "worker.log", "w"), stderr=subprocess.STDOUT))
        base_url = f"http://127.0.0.1:{port}"
        _wait_http(f"{base_url}/v1/catalog", processes, timeout=90)
        yield Server(base_url, api_key, database_url, log_dir, processes)
    finally:
        for p in reversed(processes):
            _stop(p)
        if created_db:
            with contextlib.suppress(Exception):
                _drop_database(created_db)
        if redis_db is not None:
            with contextlib.suppress(Exception):
                _flush_redis_db(redis_db)


if __name__ == "__main__":
    # SIGTERM (kill) unwinds like Ctrl-C, so the processes stop and the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_server(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vihub-dashboard-dev")) as server:
        print(f"{server.base_url}  key: {server.api_key}", flush=True)
        try:
            while all(p.poll() is None for p in server.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
