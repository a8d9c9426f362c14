"""The schema is made by Alembic only, and matches the models on both dialects."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from store.migrate import alembic_config, current_revision, head_revision, upgrade


def test_upgrade_from_empty_creates_every_table(db_url: str, tmp_path) -> None:
    if db_url.startswith("sqlite"):
        db_url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"  # a truly empty database
    upgrade(db_url)
    from store.db import make_engine

    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"tenants", "api_keys", "datasets", "jobs", "loss_points", "artifacts",
            "webhook_deliveries", "alembic_version"} <= tables
    assert current_revision(db_url) == head_revision()


def test_models_and_migrations_agree(migrated_db: str) -> None:
    # `alembic check` raises when autogenerate would emit any operation.
    command.check(alembic_config(migrated_db))


def test_downgrade_and_upgrade_again(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert current_revision(url) is None
    upgrade(url)
    assert current_revision(url) == head_revision()
