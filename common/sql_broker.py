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
registers the alias; ``common.broker`` imports it, so every publisher and worker that
builds its Celery configuration there for a SQL broker URL has it.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import sqlalchemy as kombu_sql
from sqlalchemy import create_engine

TRANSPORT_ALIAS = "vihub-sqla"
SQL_URL_PREFIXES = ("sqla+", "sqlalchemy+")
DEFAULT_POLLING_INTERVAL_S = 0.02

# Transport options that are kombu's, not create_engine's (kombu's own list, plus ours).
_NOT_ENGINE_OPTIONS = frozenset({
    "polling_interval", "queue_tablename", "message_tablename", "callback", "errback", "max_retries",
    "interval_start", "interval_step", "interval_max", "retry_errors",
})


class Channel(kombu_sql.Channel):
    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in _NOT_ENGINE_OPTIONS}
        return create_engine(conninfo.hostname, **options)


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
