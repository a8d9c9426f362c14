"""A real vihub server for the browser tests: uvicorn (``api.app:create_app``, which
includes the dashboard router) and a separate Celery worker process, against Postgres + Redis (a key prefix of
its own on the shared Redis; an API key created through the store), or the embedded
default (SQLite + the SQLAlchemy broker, no key).

``python tests/dashboard/live_server.py`` runs one in the foreground for hand testing and
prints its URL and key.
"""

from __future__ import annotations

import contextlib
import json
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


def _redis_db_and_prefix() -> tuple[int, str]:
    """A Redis database and a key prefix of our own (kombu's ``global_keyprefix``), so that
    no other test's worker takes our jobs off the shared ``cpu`` queue, nor ours theirs."""
    return 1 + secrets.randbelow(15), f"vihub-dashboard-{secrets.token_hex(4)}:"


def _delete_redis_keys(index: int, prefix: str) -> None:
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=index)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _create_api_key(database_url: str) -> str:
    from sqlalchemy.orm import Session

    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.db import make_engine
    from store.repositories.api_keys import ApiKeyRepository
    from store.repositories.tenants import TenantRepository

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
    """TERM (Celery's warm shutdown), then KILL of the process group if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def running_server(log_dir: Path, *, backend: str = "postgres", database_url: str | None = None) -> Iterator[Server]:
    """Start migrate + API + worker; yield a ``Server``; stop and clean up everything.

    ``backend="postgres"``: Postgres (``database_url``, else a fresh database) and Redis,
    API keys required (a key is created through the store). ``backend="embedded"``: the
    ``vihub up`` default, SQLite and the SQLAlchemy broker under ``log_dir``, no key.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    home = log_dir / "home"
    created_db = None
    redis_cleanup = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
    env.update({
        "VIHUB_HOME": str(home),
        "VIHUB_WORKER__PROGRESS_EVERY_S": "0.3",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # Two cores shared with other work: keep torch to one thread.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    })
    if backend == "embedded":
        env["VIHUB_DATABASE_URL"] = database_url or f"sqlite:///{home / 'vihub.sqlite3'}"
        env["VIHUB_BROKER_URL"] = f"sqla+sqlite:///{home / 'broker.sqlite3'}"
        env["VIHUB_AUTH"] = "disabled"
    else:
        if database_url is None:
            created_db, database_url = _create_database()
        redis_db, prefix = _redis_db_and_prefix()
        redis_cleanup = (redis_db, prefix)
        env["VIHUB_DATABASE_URL"] = database_url
        env["VIHUB_BROKER_URL"] = f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}"
        env["VIHUB_BROKER_TRANSPORT_OPTIONS"] = json.dumps({"global_keyprefix": prefix})
        env["VIHUB_AUTH"] = "required"
    processes: list[subprocess.Popen] = []
    try:
        home.mkdir(parents=True, exist_ok=True)
        with open(log_dir / "migrate.log", "w") as log:
            subprocess.run([sys.executable, "-c", "from store.migrate import upgrade; upgrade()"],
                           cwd=REPO, env=env, check=True, timeout=120, stdout=log, stderr=subprocess.STDOUT)
        api_key = _create_api_key(env["VIHUB_DATABASE_URL"]) if env["VIHUB_AUTH"] == "required" else ""
        port = free_port()
        processes.append(_spawn(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            env, log_dir / "api.log"))
        processes.append(_spawn(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "cpu", "--pool", "solo",
             "--concurrency", "1", "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env, log_dir / "worker.log"))
        base_url = f"http://127.0.0.1:{port}"
        _wait_http(f"{base_url}/v1/catalog", processes, timeout=90)
        yield Server(base_url, api_key, env["VIHUB_DATABASE_URL"], log_dir, processes)
    finally:
        for p in reversed(processes):
            _stop(p)
        if created_db:
            with contextlib.suppress(Exception):
                _drop_database(created_db)
        if redis_cleanup is not None:
            with contextlib.suppress(Exception):
                _delete_redis_keys(*redis_cleanup)


def _spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "w") as log:
        # Own process group, so stopping it stops any child it forks.
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


if __name__ == "__main__":
    # SIGTERM (kill) unwinds like Ctrl-C, so the processes stop and the database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    backend = os.environ.get("VIHUB_DASHBOARD_BACKEND", "postgres")
    with running_server(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vihub-dashboard-dev"), backend=backend) as server:
        print(f"{server.base_url}  key: {server.api_key}", flush=True)
        try:
            while all(p.poll() is None for p in server.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
