"""Engines and sessions for the vihub store.

``make_engine(url)`` applies the per-dialect settings vihub relies on:

- SQLite: WAL (readers never block the one writer: the API polls while a worker writes),
  ``foreign_keys=ON`` (SQLite ignores FKs otherwise), ``busy_timeout`` (a second writer
  waits instead of failing with "database is locked"), ``synchronous=NORMAL`` (safe with
  WAL). pysqlite's default transaction handling is kept on purpose: it begins a
  transaction at the first write, so a read-then-write session never dies with
  SQLITE_BUSY_SNAPSHOT; every state change in the repositories is one guarded UPDATE.
- Postgres (psycopg 3): a bounded pool with ``pool_pre_ping`` (survives a DB restart)
  and a recycle below typical idle-connection killers.

``session_factory(settings)`` returns a cached ``sessionmaker`` per URL; callers own the
transaction (``with factory.begin() as session: ...``). After ``fork`` the worker calls
``dispose_engines()`` so no connection is shared across processes.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from common.settings import Settings, get_settings, normalize_database_url

SQLITE_BUSY_TIMEOUT_MS = 30_000

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """A new engine for ``url`` with vihub's dialect settings (see module docstring)."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            # The API serves requests from a thread pool; each connection is used by one
            # thread at a time, which is all check_same_thread guards against.
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for ``settings.database.url`` (created once)."""
    settings = settings or get_settings()
    url = settings.database.url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                settings.ensure_home()
            engine = make_engine(
                url,
                echo=settings.database.echo,
                pool_size=settings.database.pool_size,
                max_overflow=settings.database.max_overflow,
            )
            _engines[url] = engine
        return engine


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    """A cached ``sessionmaker`` bound to the settings' database.

    ``expire_on_commit=False``: objects returned by a repository stay readable after the
    caller commits (the API serialises them after the transaction ends).
    """
    settings = settings or get_settings()
    engine = get_engine(settings)
    with _lock:
        factory = _factories.get(settings.database.url)
        if factory is None:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            _factories[settings.database.url] = factory
        return factory


def dispose_engines(close: bool = False) -> None:
    """Forget pooled connections (call in a forked child; ``close=True`` at shutdown)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=close)
        if close:
            _engines.clear()
            _factories.clear()
