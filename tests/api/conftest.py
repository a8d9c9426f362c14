"""Fixtures of the API tests: an app per store backend (SQLite and Postgres), tenants with keys.

One app (and so one dry-run process pool) per backend for the whole session: spawning a
pool child costs seconds of torch import on two shared cores. Tests isolate by tenant:
each ``tenant_headers()`` call makes a fresh tenant with its own API key. Auth is
``required`` here; the embedded default (auth disabled) has its own small app.

The broker is kombu's SQLAlchemy transport on a temp SQLite file: publishing really
happens (tests can count published messages) and no worker consumes them, so jobs stay
``queued`` unless a test moves them through the store's repository.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from job_bodies import linear_job

TEST_QUOTAS = {
    "max_steps": 5000,
    "max_run_seconds": 600,
    "max_dataset_bytes": 200_000,
    "max_concurrent_jobs": 3,
    "max_upload_bytes": 300_000,
}


class ApiHarness:
    """A running app (TestClient, lifespan entered) and direct access to its database."""

    def __init__(self, client: TestClient, settings: Any, broker_path: Path) -> None:
        self.client = client
        self.settings = settings
        self.broker_path = broker_path
        self.app = client.app
        self.backend = "postgres" if settings.database.url.startswith("postgresql") else "sqlite"

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def session(self) -> Any:
        return self.runtime.sessionmaker.begin()

    def new_tenant(self) -> tuple[Any, str]:
        from common.keys import display_prefix, generate_api_key, hash_api_key
        from store.repositories.api_keys import ApiKeyRepository
        from store.repositories.tenants import TenantRepository

        key = generate_api_key()
        with self.session() as session:
            tenant = TenantRepository(session).create(f"t-{uuid.uuid4().hex[:10]}")
            ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
        return tenant, key

    def tenant_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.new_tenant()[1]}"}

    def published_job_ids(self) -> list[str]:
        """Job ids sent to the broker so far (kombu's SQL transport keeps messages in a table)."""
        if not self.broker_path.exists():
            return []
        connection = sqlite3.connect(self.broker_path)
        try:
            rows = connection.execute("SELECT payload FROM kombu_message").fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            connection.close()
        ids = []
        for (payload,) in rows:
            message = json.loads(payload)
            body = message.get("body")
            import base64

            decoded = json.loads(base64.b64decode(body)) if message.get("properties", {}).get("body_encoding") == "base64" else body
            args = decoded[0] if isinstance(decoded, list) else decoded.get("args", [])
            ids.extend(args)
        return ids


def _make_harness(database_url: str, home: Path, auth: str = "required", **overrides: Any) -> Iterator[ApiHarness]:
    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade

    upgrade(database_url)
    broker_path = home / "broker.sqlite3"
    settings = Settings(
        home=home,
        database_url=database_url,
        broker_url=f"sqla+sqlite:///{broker_path}",
        auth=auth,
        quotas=TEST_QUOTAS,
        **overrides,
    )
    settings.api = settings.api.model_copy(update=dict(dry_run_workers=1, dry_run_time_limit_s=30.0, sse_poll_s=0.1))
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield ApiHarness(client, settings, broker_path)


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    """The app on each store backend (auth required)."""
    home = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{home / 'vihub.sqlite3'}"
    yield from _make_harness(url, home)


@pytest.fixture(scope="session")
def api_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    """SQLite only, for tests whose subject is not the store backend."""
    home = tmp_path_factory.mktemp("api-sqlite-only")
    yield from _make_harness(f"sqlite:///{home / 'vihub.sqlite3'}", home)


@pytest.fixture(scope="session")
def api_embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiHarness]:
    """The embedded default: SQLite, auth disabled (every request is the default tenant)."""
    home = tmp_path_factory.mktemp("api-embedded")
    yield from _make_harness(f"sqlite:///{home / 'vihub.sqlite3'}", home, auth="disabled")


@pytest.fixture
def headers(api: ApiHarness) -> dict[str, str]:
    return api.tenant_headers()


@pytest.fixture
def problem() -> Callable[..., dict[str, Any]]:
    """``problem(response, status, slug)``: assert a problem+json answer and return its body."""

    def check(response: Any, status: int, slug: str | None = None) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json"), response.headers
        body = response.json()
        assert body["status"] == status
        assert body["type"].startswith("https://vihub.dev/problems/")
        assert body["title"]
        if slug is not None:
            assert body["type"] == f"https://vihub.dev/problems/{slug}", body
        return body

    return check


@pytest.fixture
def make_job() -> Callable[..., dict[str, Any]]:
    """``make_job(steps=10, **top_level_overrides)``: a tiny valid job body."""
    return linear_job


@pytest.fixture
def quotas() -> dict[str, int]:
    return dict(TEST_QUOTAS)
