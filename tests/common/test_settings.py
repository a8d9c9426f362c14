"""Settings: env mapping, embedded defaults, auth default and the Celery config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.broker import celery_config
from common.settings import Settings, get_settings, override_settings


def test_embedded_defaults_live_under_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("VIHUB_DATABASE_URL", "VIHUB_BROKER_URL", "VIHUB_AUTH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VIHUB_HOME", str(tmp_path))
    s = Settings()
    assert s.database.url == f"sqlite:///{tmp_path}/vihub.sqlite3"
    assert s.broker.url == f"sqla+sqlite:///{tmp_path}/broker.sqlite3"
    assert s.auth == "disabled"


def test_server_database_requires_auth_and_uses_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIHUB_AUTH", raising=False)
    monkeypatch.setenv("VIHUB_DATABASE_URL", "postgresql://postgres@db:5432/vihub")
    s = Settings()
    assert s.database.url == "postgresql+psycopg://postgres@db:5432/vihub"
    assert s.auth == "required"
    monkeypatch.setenv("VIHUB_AUTH", "disabled")
    assert Settings().auth == "disabled"


def test_nested_sections_use_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIHUB_WORKER__LEASE_SECONDS", "17")
    monkeypatch.setenv("VIHUB_QUOTAS__MAX_STEPS", "123")
    monkeypatch.setenv("VIHUB_LIMITS__MAX_PLATE_SIZE", "99")
    s = Settings()
    assert (s.worker.lease_seconds, s.quotas.max_steps, s.limits.max_plate_size) == (17, 123, 99)


def test_time_limits_are_checked() -> None:
    with pytest.raises(ValidationError):
        Settings(worker={"soft_time_limit_s": 10, "hard_time_limit_s": 5})
    with pytest.raises(ValidationError):
        Settings(worker={"soft_time_limit_s": 10, "hard_time_limit_s": 20, "visibility_timeout_s": 15})


def test_celery_config_for_redis_sets_visibility_above_hard_limit() -> None:
    s = Settings(broker_url="redis://127.0.0.1:6379/0", database_url="sqlite:///x.db")
    conf = celery_config(s)
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_serializer"] == "json" and conf["accept_content"] == ["json"]
    assert conf["task_default_queue"] == "cpu"
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    assert conf["task_time_limit"] > conf["task_soft_time_limit"]


def test_override_settings_is_scoped() -> None:
    before = get_settings()
    with override_settings(database_url="sqlite:///override.db") as s:
        assert get_settings() is s
    assert get_settings() is before


def test_limits_are_the_language_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference.language import Limits

    assert type(Settings().limits) is Limits and Settings().limits == Limits()
    monkeypatch.setenv("VIHUB_LIMITS__MAX_SOURCE_BYTES", "0")
    with pytest.raises(ValidationError, match="positive integer"):
        Settings()


def test_database_and_broker_sections_keep_the_documented_flat_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIHUB_DATABASE_URL", "postgresql://u@db/vihub")
    monkeypatch.setenv("VIHUB_DB_POOL_SIZE", "40")
    monkeypatch.setenv("VIHUB_DB_MAX_OVERFLOW", "20")
    monkeypatch.setenv("VIHUB_BROKER_URL", "redis://r:6379/0")
    monkeypatch.setenv("VIHUB_BROKER_TRANSPORT_OPTIONS", '{"global_keyprefix": "x:"}')
    s = Settings()
    assert (s.database.url, s.database.pool_size, s.database.max_overflow) == ("postgresql+psycopg://u@db/vihub", 40, 20)
    assert s.broker.url == "redis://r:6379/0" and s.broker.transport_options == {"global_keyprefix": "x:"}
    # The sectioned name wins over the flat one; keyword arguments take either form.
    monkeypatch.setenv("VIHUB_DATABASE__POOL_SIZE", "7")
    assert Settings().database.pool_size == 7
    assert Settings(database_url="sqlite:///a.db").database.url == "sqlite:///a.db"
    assert Settings(database={"url": "sqlite:///b.db"}).database.url == "sqlite:///b.db"
    monkeypatch.setenv("VIHUB_WEBHOOKS_ALLOW_PRIVATE", "true")
    assert Settings().webhooks.allow_private is True
    monkeypatch.setenv("VIHUB_BROKER_TRANSPORT_OPTIONS", "{not json")
    with pytest.raises(ValueError, match="VIHUB_BROKER_TRANSPORT_OPTIONS is not JSON"):
        Settings()


def test_settings_load_without_torch() -> None:
    """The worker's parent process and the API read settings; neither may load torch for it."""
    import subprocess
    import sys

    code = "import sys, common.settings, common.broker; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_api_section_reaches_the_api_runtime(monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.settings import Settings
    from store.migrate import upgrade

    monkeypatch.setenv("VIHUB_API__DRY_RUN_WORKERS", "3")
    monkeypatch.setenv("VIHUB_API__AUTH_CACHE_TTL_S", "0")
    monkeypatch.setenv("VIHUB_API__WARM_UP_POOL", "false")
    url = f"sqlite:///{tmp_path / 'v.sqlite3'}"
    upgrade(url)
    with TestClient(create_app(Settings(home=tmp_path, database_url=url))) as client:
        runtime = client.app.state.runtime
        assert runtime.dry_runs.max_workers == 3 and runtime.tenants.ttl_s == 0
