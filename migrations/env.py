"""Alembic environment for vihub.

The URL is, in order: ``-x url=...``, the config's ``sqlalchemy.url`` (set by
``store.migrate``), then ``Settings().database.url``. ``render_as_batch`` lets
ALTERs run on SQLite (table copy-and-move).
"""

from __future__ import annotations

import logging.config

from alembic import context

from common.settings import get_settings, normalize_database_url
from store.db import make_engine
from store.models import Base
import store.sweeps  # noqa: F401,E402 - registers the sweeps tables on Base.metadata

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    url = x_args.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        settings = get_settings()
        if settings.is_sqlite:
            settings.ensure_home()
        url = settings.database.url
    return normalize_database_url(url)


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
