"""Publishing job ids from the worker side (the sweeper's republish).

The API has its own publisher (``api/publisher.py``); both send ``vihub.run_job`` by name
with a Celery client configured by ``store.settings.celery_config``.
"""

from __future__ import annotations

import json
import logging
import threading

from celery import Celery

from store.settings import JOB_TASK_NAME, Settings, celery_config, get_settings

log = logging.getLogger("vihub.worker.publisher")

_lock = threading.Lock()
_clients: dict[str, Celery] = {}

# Bounded: a sweep must not hang on a dead broker; the next sweep retries.
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


def publisher_app(settings: Settings | None = None) -> Celery:
    """A Celery client per broker configuration (URL *and* transport options: two
    settings with one Redis URL but different key prefixes are different brokers)."""
    settings = settings or get_settings()
    config = celery_config(settings)
    key = json.dumps([config["broker_url"], config["broker_transport_options"]], sort_keys=True, default=str)
    with _lock:
        app = _clients.get(key)
        if app is None:
            app = Celery("vihub-publisher", config_source=config)
            _clients[key] = app
        return app


def publish_job(job_id: str, queue: str, settings: Settings | None = None) -> None:
    """Send ``vihub.run_job(job_id)`` to ``queue``; raises if the broker refuses."""
    publisher_app(settings).send_task(
        JOB_TASK_NAME, args=[str(job_id)], queue=queue, retry=True, retry_policy=RETRY_POLICY
    )


def close_publishers() -> None:
    with _lock:
        for app in _clients.values():
            app.close()
        _clients.clear()
