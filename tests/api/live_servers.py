"""Real servers for the concurrency tests: a uvicorn API in a subprocess, and a private
Postgres cluster that a test may stop and start (never the shared one on 5432).

Used by ``tests/api/test_concurrency.py``; ``bench/bench_load.py`` has its own copy so
that the harness does not depend on the test tree.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:g} s")


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` into a temp dir, run as the ``postgres`` user when we are root."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not bins:
            raise RuntimeError("no Postgres server binaries under /usr/lib/postgresql")
        self.bin = bins[-1].parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vihub-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(f"{self.bin / 'initdb'} -D {self.data} -U postgres --auth=trust -E UTF8 >/dev/null")

    def _run(self, command: str) -> None:
        if self._as_postgres:
            subprocess.run(["su", "postgres", "-c", command], check=True)
        else:
            subprocess.run(["bash", "-c", command], check=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off"
        self._run(f"{self.bin / 'pg_ctl'} -D {self.data} -l {self.dir / 'log'} -o '{options}' -w -t 60 start >/dev/null")

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{self.bin / 'pg_ctl'} -D {self.data} -m {mode} -w -t 60 stop >/dev/null")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001 - already stopped
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class ApiServer:
    """``uvicorn api.app:create_app --factory`` in a subprocess, with ``VIHUB_*`` env."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"api-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
        full_env.update({"VIHUB_HOME": str(home), "PYTHONPATH": str(REPO_ROOT), **env})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            cwd=REPO_ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        import httpx

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited: {self.log_tail()}")
            return httpx.get(self.base_url + "/readyz", timeout=5).status_code == 200

        wait_for(up, timeout_s, "API")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            # The whole process group: the API and its dry-run children.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group
        except ProcessLookupError:
            pass
        self._log.close()


def make_tenant_key(database_url: str, name: str | None = None) -> tuple[str, str]:
    """A tenant with an API key, written straight to the store: ``(tenant_id, key)``."""
    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.db import make_engine
    from store.repositories.api_keys import ApiKeyRepository
    from store.repositories.tenants import TenantRepository
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(database_url)
    try:
        key = generate_api_key()
        with sessionmaker(bind=engine, expire_on_commit=False).begin() as session:
            tenant = TenantRepository(session).create(name or f"t-{uuid.uuid4().hex[:10]}")
            ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
        return tenant.id, key
    finally:
        engine.dispose()


def count_jobs(database_url: str, tenant_id: str) -> int:
    from sqlalchemy import func, select

    from store.db import make_engine
    from store.models import Job

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(
                select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id)).scalar_one())
    finally:
        engine.dispose()
