"""The server-side ``vihub`` commands against a temporary SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from common.keys import hash_api_key
from common.settings import get_settings
from store.db import make_engine
from store.migrate import current_revision, head_revision
from store.repositories import ApiKeyRepository, TenantRepository
from vihub.cli import app

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [k for k in os.environ if k.startswith("VIHUB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VIHUB_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_migrate_creates_the_schema(home: Path) -> None:
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    url = f"sqlite:///{home / 'vihub.sqlite3'}"
    assert current_revision(url) == head_revision()
    engine = make_engine(url)
    try:
        assert {"jobs", "tenants", "api_keys"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # Idempotent: a second run is a no-op.
    assert CliRunner().invoke(app, ["migrate"]).exit_code == 0


def test_keys_create_prints_a_key_that_authenticates(home: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["keys", "create", "--tenant", "acme"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    assert key.startswith("vihub_") and len(key) > 40

    from sqlalchemy.orm import Session

    engine = make_engine(f"sqlite:///{home / 'vihub.sqlite3'}")
    try:
        with Session(engine) as session:
            row = ApiKeyRepository(session).find_active_by_hash(hash_api_key(key))
            tenant = TenantRepository(session).get_by_name("acme")
            assert row is not None and tenant is not None and row.tenant_id == tenant.id
            assert key not in {row.key_hash, row.prefix}  # only the hash is stored
    finally:
        engine.dispose()
    second = runner.invoke(app, ["keys", "create", "--tenant", "acme"])
    assert second.exit_code == 0 and second.stdout.strip().splitlines()[0] != key
    listing = runner.invoke(app, ["keys", "list", "--tenant", "acme"])
    assert listing.exit_code == 0 and listing.stdout.count("active") == 2


def test_worker_rejects_unknown_queue(home: Path) -> None:
    result = CliRunner().invoke(app, ["worker", "--queues", "cpu,tpu"])
    assert result.exit_code != 0
    assert "queues must be among" in result.output


def test_module_entry_point_runs_as_a_process(home: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "vihub.cli", "--version"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    # With the client installed too, `vihub --version` names both distributions; the
    # server's number is the installed distribution's (pyproject.toml), not a copy.
    from importlib.metadata import version

    assert out.returncode == 0 and f"vihub {version('vihub')}" in out.stdout.splitlines()


def test_installed_server_registers_its_commands_for_the_composed_program() -> None:
    # Needs the server package installed from this tree (`pip install -e .`): the entry
    # point lives in the distribution's metadata, not in the source.
    from importlib.metadata import entry_points

    from vihub_client import cli as client_cli

    registered = {(e.dist.name if e.dist else None, e.value) for e in entry_points(group=client_cli.COMMANDS_GROUP)}
    assert ("vihub", "vihub.cli:app") in registered
    composed = CliRunner().invoke(client_cli.make_app(), ["--help"]).stdout
    assert {"up", "api", "worker", "migrate", "keys", "submit", "datasets"} <= set(composed.replace("│", " ").split())


def test_main_runs_the_server_commands_alone_when_they_are_not_registered(monkeypatch, capsys) -> None:
    # Metadata that predates the entry point: handing over to the client would lose `up`.
    import vihub.cli as server_cli

    monkeypatch.setattr(server_cli, "_registered", lambda: False)
    monkeypatch.setattr(sys, "argv", ["vihub", "--help"])
    with pytest.raises(SystemExit) as exited:
        server_cli.main()
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "migrate" in out and "submit" not in out
