"""The embedded broker's transport: kombu's SQLAlchemy transport, polled often.

kombu's SQL transport is a *virtual* transport without an event loop: a Celery worker
consumes it with a blocking loop that, when the queue is empty, sleeps the transport's
``polling_interval`` before it looks again. kombu's default is 1 s, so a job published to
an idle embedded worker waited 0.5 s on average and up to 1 s before it was even
received — most of a short job's dispatch latency. A poll of the SQLite queue table is a
few small statements (well under a millisecond), so ``Transport`` polls every
``DEFAULT_POLLING_INTERVAL_S`` instead; ``broker.polling_interval_s`` sets it.

Why a subclass rather than the ``polling_interval`` transport option alone: kombu's
virtual transport reads that option, but the SQL transport's channel hands *every*
transport option to ``sqlalchemy.create_engine``, which rejects the unknown keyword. The
channel here leaves it out.

kombu picks a transport from the URL's ``name+`` prefix and accepts only registered
aliases there (never an import path taken from a URL), so the transport is registered as
``TRANSPORT_ALIAS``: ``common.broker.celery_config`` turns ``sqla+sqlite:///...`` (what
operators configure) into ``vihub-sqla+sqlite:///...`` for Celery. Importing this module
registers the alias; ``common.broker.celery_config`` imports it for a SQL broker URL, so
every publisher and worker that builds its Celery configuration there has it.
"""

from __future__ import annotations

import logging
import time
from queue import Empty
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sql

log = logging.getLogger("vihub.broker")

TRANSPORT_ALIAS = "vihub-sqla"
SQL_URL_PREFIXES = ("sqla+", "sqlalchemy+")
DEFAULT_POLLING_INTERVAL_S = 0.02
# On SQLite a queue seen empty is re-read only when the file changed, or after this.
FULL_POLL_EVERY_S = 1.0

# Transport options that are kombu's, not create_engine's (kombu's own list, plus ours).
_NOT_ENGINE_OPTIONS = frozenset({
    "polling_interval", "queue_tablename", "message_tablename", "callback", "errback", "max_retries",
    "interval_start", "interval_step", "interval_max", "retry_errors",
})


class Channel(kombu_sql.Channel):
    """kombu's SQL channel; on SQLite a poll of a queue last seen empty first asks the
    file whether anything was committed since (``PRAGMA data_version``, on a connection
    of the channel's own), and reads the queue only then, or after
    ``FULL_POLL_EVERY_S`` in any case.

    A poll of kombu's channel is four statements through the ORM (~0.4 ms of CPU, more
    with the worker's control queue polled too); at a 0.02 s interval an idle worker
    spent ~8% of a core on them. ``data_version`` changes whenever another connection
    commits to the file — a publish, or this channel's own session taking a message —
    so an unchanged version means no new row and the shortcut never hides a message
    (the version connection never opens a transaction, so it never reads a stale
    snapshot). The full poll every ``FULL_POLL_EVERY_S`` is a backstop.
    """

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        self._version_conn: Any = None
        self._empty_at: dict[str, tuple[int, float]] = {}  # queue -> (data_version, when)

    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in _NOT_ENGINE_OPTIONS}
        # SQLAlchemy's create_engine, as kombu's channel calls it (common stays free of
        # SQL imports of its own: this module only adjusts kombu's transport).
        return kombu_sql.create_engine(conninfo.hostname, **options)

    def _data_version(self) -> int | None:
        """SQLite's change counter as seen by this channel's own connection; None when
        it is not SQLite or the question failed (then the queue is read)."""
        try:
            if self._version_conn is None:
                engine = self.session.bind
                if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
                    return None  # an in-memory database shares one connection: no "other" commits
                self._version_conn = engine.raw_connection()
            cursor = self._version_conn.cursor()
            try:
                cursor.execute("PRAGMA data_version")
                return int(cursor.fetchone()[0])
            finally:
                cursor.close()
        except Exception:  # noqa: BLE001 - a locked file, a closed connection: read the queue
            self._drop_version_conn()
            return None

    def _get(self, queue: str) -> Any:
        version = self._data_version()
        seen = self._empty_at.get(queue)
        now = time.monotonic()
        if version is not None and seen is not None and seen[0] == version and now - seen[1] < FULL_POLL_EVERY_S:
            raise Empty()
        try:
            return super()._get(queue)
        except Empty:
            if version is not None:
                self._empty_at[queue] = (version, now)
            raise

    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        super()._put(queue, payload, **kwargs)
        # Insurance: the next poll of this queue reads it, whatever the version says.
        self._empty_at.pop(queue, None)

    def _drop_version_conn(self) -> None:
        conn, self._version_conn = self._version_conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: nothing to release
                log.debug("closing the data_version connection failed", exc_info=True)

    def close(self) -> None:
        self._drop_version_conn()
        super().close()


class Transport(kombu_sql.Transport):
    """kombu's SQLAlchemy transport, polling an empty queue every ``polling_interval`` s
    (the ``polling_interval`` transport option overrides the class default)."""

    Channel = Channel
    polling_interval = DEFAULT_POLLING_INTERVAL_S


def celery_broker_url(url: str) -> str:
    """``url`` with a SQL transport prefix (``sqla+``/``sqlalchemy+``) naming this
    transport instead of kombu's; any other URL unchanged."""
    for prefix in SQL_URL_PREFIXES:
        if url.startswith(prefix):
            return f"{TRANSPORT_ALIAS}+{url[len(prefix):]}"
    return url


TRANSPORT_ALIASES.setdefault(TRANSPORT_ALIAS, f"{__name__}:Transport")
