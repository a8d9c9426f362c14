"""Publishing job ids to the broker, from the API side.

The API never imports ``worker/``: it sends the task by name with a Celery client
configured from the same settings (``store.settings.celery_config``). A job id is
published only after the transaction that created the job has committed; if publishing
fails the job stays ``queued`` in the database and the worker's sweeper republishes it,
so a broker outage delays jobs but never loses them.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("vihub.api.publisher")

RUN_JOB_TASK = "vihub.run_job"


class JobPublisher:
    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._celery: Any = None

    @property
    def celery(self) -> Any:
        if self._celery is None:
            from celery import Celery

            from store.settings import celery_config

            self._celery = Celery("vihub-api", config_source=celery_config(self._settings))
        return self._celery

    def publish(self, job_id: str, queue: str) -> bool:
        """Send ``vihub.run_job(job_id)`` to ``queue``; False (and a log line) if it failed."""
        try:
            self.celery.send_task(
                RUN_JOB_TASK,
                args=[str(job_id)],
                queue=queue,
                # A short, bounded retry: the request must not hang on a dead broker.
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5},
            )
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

    def close(self) -> None:
        if self._celery is not None:
            try:
                self._celery.close()
            except Exception:  # pragma: no cover
                pass
