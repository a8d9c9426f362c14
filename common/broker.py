"""The broker contract between the API (and the sweeper) that publish job ids and the
worker that consumes them: the task name, the queues, the Celery configuration and the
one publisher.

Publishers send ``JOB_TASK_NAME`` by name (``send_task``) with a Celery client made from
``celery_config(settings)``, so neither side imports the other. A job id is published
only after the transaction that made the job ``queued`` has committed; a failed publish
leaves the job ``queued`` in the database and the sweeper publishes it later, so a broker
outage delays jobs but never loses them. That is also why every publish has the same
short, bounded retry (``RETRY_POLICY``): neither a request nor a sweep may hang on a dead
broker when the database already guarantees a later try.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from common.settings import Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger("vihub.broker")

JOB_TASK_NAME = "vihub.run_job"
QUEUES = ("cpu", "gpu")
# The embedded broker's URLs: kombu's SQLAlchemy transport, run as common.sql_broker's.
SQL_BROKER_PREFIXES = ("sqla+", "sqlalchemy+", "vihub-sqla+")
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery configuration shared by the worker app and every publisher."""
    w = settings.worker
    transport_options: dict[str, Any] = {}
    broker_url = settings.broker.url
    if settings.broker.url.startswith(("redis://", "rediss://")):
        # Redis redelivers an unacked message after the visibility timeout; above the hard
        # time limit so that a job still running is never handed to a second worker.
        visibility = w.effective_visibility_timeout_s
        transport_options["visibility_timeout"] = visibility
        # kombu scans for unacked messages older than the visibility timeout every
        # interval x throttle seconds (default 10 x 10); keep that a fraction of the
        # timeout so a short timeout (tests, small deployments) redelivers promptly.
        transport_options["unacked_restore_interval"] = max(1, min(10, visibility // 10))
        transport_options["unacked_restore_throttle"] = 1 if visibility < 1000 else 10
        # The restore scan holds a Redis mutex; a worker killed while holding it blocks
        # every other worker's restore until it expires (default 300 s).
        transport_options["unacked_mutex_expire"] = max(10, min(300, visibility // 4))
    elif settings.broker.url.startswith(SQL_BROKER_PREFIXES):
        # Imported here, not above: kombu costs an API start-up ~0.1 s (see JobPublisher).
        from common.sql_broker import celery_broker_url

        broker_url = celery_broker_url(settings.broker.url)
        # kombu hands these to sqlalchemy.create_engine: wait on a locked SQLite file
        # (API, worker and sweeper all use it) instead of failing the publish.
        transport_options["connect_args"] = {"timeout": 30}
        # How often an idle worker polls the queue table (kombu's default, 1 s, was most
        # of a short job's dispatch latency); common.sql_broker keeps it from create_engine.
        transport_options["polling_interval"] = settings.broker.polling_interval_s
    transport_options.update(settings.broker.transport_options)
    return {
        "broker_url": broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Results live in the vihub database, not in a Celery result backend.
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        # Explicitly off (Celery 5 warns that its default flips to True in Celery 6): a Redis
        # blip must not cancel running fits. A job whose worker really died is reclaimed by
        # its lease (the sweeper), and the claim is atomic, so a redelivery is harmless.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": w.soft_time_limit_s,
        "task_time_limit": w.hard_time_limit_s,
        "task_default_queue": "cpu",
        "task_routes": {JOB_TASK_NAME: {"queue": "cpu"}},
        "task_create_missing_queues": True,
        "worker_hijack_root_logger": False,
        # A fresh pool child on a loaded machine can take a while to report UP; the
        # default (4 s) makes the parent kill and respawn it in a loop.
        "worker_proc_alive_timeout": 60,
        "worker_send_task_events": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


class JobPublisher:
    """A Celery client that publishes job ids to one broker (made on first use: importing
    Celery costs the API's start-up nothing until the first submit)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._celery: Celery | None = None
        self._lock = threading.Lock()

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            with self._lock:
                if self._celery is None:
                    from celery import Celery

                    self._celery = Celery("vihub-publisher", config_source=celery_config(self._settings))
        return self._celery

    def send(self, job_id: str, queue: str) -> None:
        """Send ``JOB_TASK_NAME(job_id)`` to ``queue``; raises if the broker refuses."""
        self.celery.send_task(JOB_TASK_NAME, args=[str(job_id)], queue=queue, retry=True,
                              retry_policy=RETRY_POLICY)

    def publish(self, job_id: str, queue: str) -> bool:
        """``send``, but False (and a log line) instead of raising: the caller's job stays
        ``queued`` and the sweeper publishes it."""
        try:
            self.send(job_id, queue)
            return True
        except Exception:
            log.warning("could not publish job %s to queue %s; the sweeper will retry", job_id, queue, exc_info=True)
            return False

    def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the broker accepts a connection (``/readyz``)."""
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=timeout_s)
            return True
        except Exception:
            log.info("broker not reachable", exc_info=True)
            return False

    def queue_depth(self, queue: str) -> int | None:
        """Messages ready in ``queue`` (Redis: LLEN over priorities; the embedded SQL
        transport: visible rows), via kombu's channel; None on any error."""
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=5)
                _, count, _ = connection.default_channel.queue_declare(queue=queue, passive=False)
                return int(count)
        except Exception:
            log.info("could not read the depth of broker queue %s", queue, exc_info=True)
            return None

    def close(self) -> None:
        if self._celery is not None:
            try:
                self._celery.close()
            except Exception:  # pragma: no cover
                pass


_shared_lock = threading.Lock()
_shared: dict[str, JobPublisher] = {}


def publisher_for(settings: Settings | None = None) -> JobPublisher:
    """The process's publisher for a broker configuration (URL *and* transport options: two
    settings with one Redis URL but different key prefixes are different brokers). The
    API's app owns a publisher of its own (closed with the app); the sweeper and the
    runner share these."""
    settings = settings or get_settings()
    config = celery_config(settings)
    key = json.dumps([config["broker_url"], config["broker_transport_options"]], sort_keys=True, default=str)
    with _shared_lock:
        publisher = _shared.get(key)
        if publisher is None:
            publisher = _shared[key] = JobPublisher(settings)
        return publisher


def publish_job(job_id: str, queue: str, settings: Settings | None = None) -> None:
    """Send ``JOB_TASK_NAME(job_id)`` to ``queue`` with the shared publisher; raises if the
    broker refuses."""
    publisher_for(settings).send(job_id, queue)


def close_publishers() -> None:
    with _shared_lock:
        for publisher in _shared.values():
            publisher.close()
        _shared.clear()
