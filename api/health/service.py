"""Readiness checks: can this process reach the database and the broker?"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.health.schemas import Readiness

log = logging.getLogger("vihub.api.health")


def readiness(runtime: Any) -> Readiness:
    database = _database_ok(runtime)
    broker = runtime.publisher.ping(timeout_s=2.0)
    return Readiness(status="ready" if database and broker else "not-ready", database=database, broker=broker)


def _database_ok(runtime: Any) -> bool:
    from sqlalchemy import text

    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        log.info("database not reachable", exc_info=True)
        return False


def metrics_exposition(runtime: Any) -> tuple[bytes, str]:
    return generate_latest(runtime.metrics.registry), CONTENT_TYPE_LATEST
