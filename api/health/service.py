"""Readiness checks: can this process reach the database and the broker?"""

from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.health.schemas import Readiness
from api.runtime import Runtime

log = logging.getLogger("vihub.api.health")


def readiness(runtime: Runtime) -> Readiness:
    database = _database_ok(runtime)
    broker = runtime.publisher.ping(timeout_s=2.0)
    return Readiness(status="ready" if database and broker else "not-ready", database=database, broker=broker)


def _database_ok(runtime: Runtime) -> bool:
    from sqlalchemy import text

    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        log.info("database not reachable", exc_info=True)
        return False


def metrics_exposition(runtime: Runtime) -> tuple[bytes, str]:
    return generate_latest(runtime.metrics.registry), CONTENT_TYPE_LATEST
