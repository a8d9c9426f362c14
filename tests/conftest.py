"""Shared fixtures: real databases, a real broker and real Celery worker processes.

Backends
- ``pg_url``: a fresh database ``vihub_test_<random>`` on 127.0.0.1:5432 (user postgres),
  dropped at session end. ``sqlite_url``: a file in a temp dir.
- ``db_url``: parametrised over ``sqlite`` and ``postgres``; ``migrated_db`` is the same
  URL after ``alembic upgrade head`` (the only way a schema is made, tests included).
- ``redis_url``: ``redis://127.0.0.1:6379/<n>`` with a random-ish db number, flushed at end.
- ``embedded_broker_url``: kombu's SQLAlchemy transport on a temp SQLite file.

Processes
- ``celery_worker_proc``: a factory starting ``celery -A worker.celery_app worker`` with the
  environment you give it; waits until the worker is ready; terminates it at teardown.
- ``sweeper_proc``: a factory starting ``python -m worker.sweeper`` the same way.

Availability: under ``CI=true`` Postgres and Redis are mandatory (a missing server fails
the test); locally a test needing an unreachable server is skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# ---- availability -----------------------------------------------------------------


def _port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Fail under CI, skip locally, when a server the test needs is unreachable."""
    if _port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI=true: integration tests must run)")
    pytest.skip(message)


# ---- databases --------------------------------------------------------------------


def _pg_admin_url() -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    require_server("Postgres", PG_HOST, PG_PORT)
    from sqlalchemy import create_engine, text

    name = f"vihub_test_{secrets.token_hex(6)}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        from store.db import dispose_engines

        dispose_engines(close=True)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """A database of its own for one test (dropped after it): for tests whose processes
    scan the whole store (the sweeper) and must not see other tests' jobs."""
    require_server("Postgres", PG_HOST, PG_PORT)
    from sqlalchemy import create_engine, text

    name = f"vihub_test_{secrets.token_hex(6)}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        yield url
    finally:
        engine = _engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'vihub.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on both store backends."""
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")


_migrated: set[str] = set()


def migrate(url: str) -> str:
    """``alembic upgrade head`` on ``url`` (once per session per URL)."""
    if url not in _migrated:
        from store.migrate import upgrade

        upgrade(url)
        _migrated.add(url)
    return url


@pytest.fixture
def migrated_db(db_url: str) -> str:
    return migrate(db_url)


@pytest.fixture
def migrated_pg(pg_url: str) -> str:
    return migrate(pg_url)


@pytest.fixture
def migrated_sqlite(sqlite_url: str) -> str:
    return migrate(sqlite_url)


_engines: dict[str, Any] = {}


def engine_for(url: str) -> Any:
    from store.db import make_engine

    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


@pytest.fixture
def session_factory(migrated_db: str) -> Any:
    """A ``sessionmaker`` on the migrated test database; callers own transactions."""
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(bind=engine_for(migrated_db), expire_on_commit=False)


@pytest.fixture
def session_factory_for() -> Callable[[str], Any]:
    """``session_factory_for(url) -> sessionmaker`` on ``url`` after migrating it (once)."""
    from sqlalchemy.orm import sessionmaker

    return lambda url: sessionmaker(bind=engine_for(migrate(url)), expire_on_commit=False)


def make_tenant(factory: Any, name: str | None = None) -> Any:
    from store.repositories.tenants import TenantRepository

    with factory.begin() as session:
        return TenantRepository(session).create(name or f"tenant-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def tenant(session_factory: Any) -> Any:
    """A fresh tenant per test: tests share a database and isolate by tenant."""
    return make_tenant(session_factory)


# ---- brokers ------------------------------------------------------------------------


_redis_prefixes: set[str] = set()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL with a random-ish db number. Many test runs share this Redis, so
    ``settings_env`` also gives every environment its own ``global_keyprefix``; at the
    end the keys under the prefixes this session made are deleted (never FLUSHDB a
    database another run may be using)."""
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    db = 1 + secrets.randbelow(15)
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
    yield url
    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        for prefix in list(_redis_prefixes):
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
        client.close()
    except Exception as exc:  # noqa: BLE001 - Redis may be down after a failed restart test
        print(f"redis_url cleanup skipped: {exc}")


@pytest.fixture
def embedded_broker_url(tmp_path: Path) -> str:
    return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"


# ---- settings -----------------------------------------------------------------------


def settings_env(
    database_url: str,
    broker_url: str,
    home: Path | str | None = None,
    **overrides: Any,
) -> dict[str, str]:
    """Environment variables for a vihub process; ``worker__lease_seconds=5`` style keys
    become ``VIHUB_WORKER__LEASE_SECONDS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
    env["VIHUB_DATABASE_URL"] = database_url
    env["VIHUB_BROKER_URL"] = broker_url
    if home is not None:
        env["VIHUB_HOME"] = str(home)
    if broker_url.startswith("redis") and "broker_transport_options" not in overrides:
        # Isolate this environment's queues from every other test run on the shared Redis.
        prefix = f"vihubtest-{secrets.token_hex(4)}:"
        _redis_prefixes.add(prefix)
        env["VIHUB_BROKER_TRANSPORT_OPTIONS"] = json.dumps({"global_keyprefix": prefix})
    for key, value in overrides.items():
        env["VIHUB_" + key.upper()] = value if isinstance(value, str) else (
            json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # Two cores shared by many: one torch thread per test process keeps tests fair.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def settings_from_env(env: dict[str, str]) -> Any:
    """The ``Settings`` a process started with ``env`` would see."""
    from common.settings import Settings

    saved = {k: v for k, v in os.environ.items() if k.startswith("VIHUB_")}
    try:
        for k in saved:
            del os.environ[k]
        os.environ.update({k: v for k, v in env.items() if k.startswith("VIHUB_")})
        return Settings()
    finally:
        for k in [k for k in os.environ if k.startswith("VIHUB_")]:
            del os.environ[k]
        os.environ.update(saved)


@pytest.fixture
def make_settings_env() -> Callable[..., dict[str, str]]:
    return settings_env


# ---- processes ----------------------------------------------------------------------


@dataclass
class ManagedProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """TERM (Celery's warm shutdown), then KILL the whole process group."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        # Children (prefork pool) share the group; make sure none survives.
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def _spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> ManagedProcess:
    log_path = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    popen = subprocess.Popen(
        argv,
        cwd=str(REPO_ROOT),
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: teardown kills the pool children too
    )
    log_file.close()
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


def wait_for_log(proc: ManagedProcess, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in proc.log():
            return
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.log()[-4000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} not ready after {timeout}s:\n{proc.log()[-4000:]}")


@pytest.fixture
def celery_worker_proc(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Factory: ``start(env, queues="cpu", pool="prefork", concurrency=1) -> ManagedProcess``.

    A real ``celery -A worker.celery_app worker`` process; returns once it logs "ready".
    Every worker started is stopped (TERM, then KILL of its process group) at teardown.
    """
    started: list[ManagedProcess] = []

    def start(
        env: dict[str, str],
        queues: str = "cpu",
        pool: str = "prefork",
        concurrency: int = 1,
        ready_timeout: float = 90.0,
        extra_args: list[str] | None = None,
    ) -> ManagedProcess:
        argv = [
            sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            "--queues", queues, "--pool", pool, "--concurrency", str(concurrency),
            "--loglevel", "INFO", "--without-mingle", "--without-gossip",
            "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h",
            *(extra_args or []),
        ]
        proc = _spawn("celery-worker", argv, env, tmp_path)
        started.append(proc)
        wait_for_log(proc, " ready.", ready_timeout)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def sweeper_proc(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Factory: ``start(env) -> ManagedProcess`` running ``python -m worker.sweeper``."""
    started: list[ManagedProcess] = []

    def start(env: dict[str, str], ready_timeout: float = 60.0) -> ManagedProcess:
        proc = _spawn("sweeper", [sys.executable, "-m", "worker.sweeper"], env, tmp_path)
        started.append(proc)
        wait_for_log(proc, "sweeper started", ready_timeout)
        return proc

    yield start
    for proc in started:
        proc.stop()


def _wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.25, message: str = "") -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(predicate, timeout, interval=0.25, message="")`` -> the truthy value."""
    return _wait_until


@pytest.fixture
def tenant_factory(session_factory: Any) -> Callable[..., Any]:
    """``tenant_factory(name=None)``: another tenant in the parametrised test database."""
    return lambda name=None: make_tenant(session_factory, name)


@pytest.fixture
def tenant_factory_for() -> Callable[..., Any]:
    """``tenant_factory_for(factory, name=None)``: a tenant in the database of ``factory``."""
    return make_tenant


@pytest.fixture
def env_settings() -> Callable[[dict[str, str]], Any]:
    """``env_settings(env) -> Settings`` as a process started with ``env`` sees them."""
    return settings_from_env
