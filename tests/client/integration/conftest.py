"""A live vihub for the client's integration tests: uvicorn + a Celery worker as
subprocesses on a fresh Postgres database and Redis, shared by the client's integration tests.

One server for the session (not per test): starting the API's dry-run pool and a worker each
imports torch, which costs many seconds on the shared cores. Tests isolate by tenant
(``live.new_key()``). The processes are started and stopped with the helpers of
``tests/conftest.py`` (loaded by path: conftest modules are not importable by name).
Under ``CI=true`` a missing Postgres or Redis fails the tests instead of skipping them.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _root_helpers() -> Any:
    spec = importlib.util.spec_from_file_location("vihub_tests_root_conftest", REPO_ROOT / "tests" / "conftest.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


root = _root_helpers()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    database_url: str
    api: Any
    worker: Any
    keys: list[str] = field(default_factory=list)

    def new_key(self) -> str:
        """A fresh tenant with its own API key."""
        from sqlalchemy.orm import sessionmaker

        from common.keys import display_prefix, generate_api_key, hash_api_key
        from store.repositories.api_keys import ApiKeyRepository
        from store.repositories.tenants import TenantRepository

        key = generate_api_key()
        factory = sessionmaker(bind=root.engine_for(self.database_url), expire_on_commit=False)
        with factory.begin() as session:
            tenant = TenantRepository(session).create(f"client-{uuid.uuid4().hex[:10]}")
            ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
        self.keys.append(key)
        return key

    def client_env(self, key: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
        env.update(VIHUB_URL=self.url, VIHUB_API_KEY=key,
                   PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "client"), str(REPO_ROOT)]))
        return env

    def logs(self) -> str:
        return f"--- api ---\n{self.api.log()[-3000:]}\n--- worker ---\n{self.worker.log()[-3000:]}"


def _wait_healthy(url: str, proc: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"uvicorn exited:\n{proc.log()[-4000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"API not ready after {timeout}s:\n{proc.log()[-4000:]}")


@pytest.fixture(scope="session")
def live(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root.require_server("Redis", root.REDIS_HOST, root.REDIS_PORT)
    root.migrate(pg_url)
    redis_url = f"redis://{root.REDIS_HOST}:{root.REDIS_PORT}/{1 + secrets.randbelow(15)}"
    logs = tmp_path_factory.mktemp("client-live")
    env = root.settings_env(
        pg_url, redis_url, home=logs,
        auth="required",
        webhooks_allow_private="true",
        worker__progress_every_s="0.2",
        worker__checkpoint_every_s="5",
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    api = root._spawn(
        "uvicorn",
        [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        env, logs,
    )
    worker = None
    try:
        _wait_healthy(url, api, timeout=180)
        worker = root._spawn(
            "celery-worker",
            [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--queues", "cpu",
             "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO", "--without-mingle",
             "--without-gossip", "--hostname", f"client-{uuid.uuid4().hex[:8]}@%h"],
            env, logs,
        )
        root.wait_for_log(worker, " ready.", 180)
        yield LiveServer(url=url, env=env, database_url=pg_url, api=api, worker=worker)
    finally:
        if worker is not None:
            worker.stop()
        api.stop()
        try:
            import redis

            client = redis.Redis.from_url(redis_url, socket_timeout=5)
            client.flushdb()
            client.close()
        except Exception:
            pass


@pytest.fixture
def api_key(live: LiveServer) -> str:
    return live.new_key()
