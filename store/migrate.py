"""Run the Alembic migrations programmatically (``vihub migrate``, ``vihub up``, tests).

The Alembic configuration is built in code (script location = the ``migrations``
package next to ``store``), so it works from an installed package without the repo's
``alembic.ini``. ``alembic upgrade head`` from the repo root does the same thing.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from common.settings import Settings, get_settings, normalize_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser interpolation syntax; URLs may contain it (encoded passwords).
    config.set_main_option("sqlalchemy.url", normalize_database_url(database_url).replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade(database_url: str | None = None, revision: str = "head", settings: Settings | None = None) -> None:
    """Bring the database at ``database_url`` (default: the settings') up to ``revision``."""
    settings = settings or get_settings()
    url = database_url or settings.database.url
    if url.startswith("sqlite") and database_url is None:
        settings.ensure_home()
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    """The newest revision in ``migrations/versions``."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    from store.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
