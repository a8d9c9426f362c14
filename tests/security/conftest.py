"""Fixtures of the security tests: an in-process app (TestClient) and a real uvicorn
server in a subprocess (its peak RSS is read from /proc/<pid>/status)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from live_deploy import free_port, wait_healthy

HERE = Path(__file__).parent
REPO = HERE.parent.parent

SMALL_QUOTAS = {
    "max_steps": 5000,
    "max_run_seconds": 600,
    "max_dataset_bytes": 200_000,
    "max_concurrent_jobs": 3,
    "max_upload_bytes": 300_000,
}


def make_client(home: Path, *, auth: str = "required", **overrides: Any) -> Iterator[TestClient]:
    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade

    url = f"sqlite:///{home / 'vihub.sqlite3'}"
    upgrade(url)
    settings = Settings(home=home, database_url=url, broker_url=f"sqla+sqlite:///{home / 'broker.sqlite3'}",
                        auth=auth, **{"quotas": SMALL_QUOTAS, **overrides})
    settings.api = settings.api.model_copy(update=dict(warm_up_pool=False, dry_run_time_limit_s=30.0))
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def new_key(client: TestClient) -> dict[str, str]:
    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.repositories.api_keys import ApiKeyRepository
    from store.repositories.tenants import TenantRepository

    key = generate_api_key()
    with client.app.state.runtime.sessionmaker.begin() as session:
        tenant = TenantRepository(session).create(f"sec-{os.urandom(5).hex()}")
        ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Small quotas, auth required (SQLite)."""
    yield from make_client(tmp_path_factory.mktemp("sec-app"))


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
    return new_key(client)


@pytest.fixture
def new_tenant_headers(client: TestClient) -> Any:
    """``new_tenant_headers() -> headers`` of a fresh tenant's key (several per test)."""
    return lambda: new_key(client)


def assert_problem(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["title"]
    if slug is not None:
        assert body["type"] == f"https://vihub.dev/problems/{slug}", body
    return body


@pytest.fixture
def problem() -> Any:
    """``problem(response, status, slug)``: assert a problem+json answer, return its body."""
    return assert_problem


@pytest.fixture
def app_factory() -> Any:
    """``app_factory(home, auth=..., **settings)``: an iterator yielding a TestClient."""
    return make_client


@pytest.fixture
def key_for() -> Any:
    """``key_for(client)``: auth headers of a fresh tenant of that client's app."""
    return new_key


class Server:
    """``uvicorn`` serving create_app (default quotas, auth disabled) in a subprocess."""

    def __init__(self, process: subprocess.Popen, port: int, log_path: Path) -> None:
        self.log_path = log_path
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def _status(self) -> dict[str, int]:
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields

    def reset_peak(self) -> int:
        """Reset the peak RSS (VmHWM) to the current RSS; returns the current RSS in bytes."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        return self._status()["VmRSS"]

    def peak_rss(self) -> int:
        return self._status()["VmHWM"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc")
    home = tmp_path_factory.mktemp("sec-server")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_path = home / "server.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen([sys.executable, str(HERE / "serve_app.py"), str(home), str(port)],
                               cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_healthy(process, f"http://127.0.0.1:{port}", log_path, timeout=60)
        yield Server(process, port, log_path)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()
