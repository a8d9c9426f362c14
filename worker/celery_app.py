"""The Celery app of the vihub worker: ``celery -A worker.celery_app worker -Q cpu``.

Configuration comes from ``store.settings.celery_config`` (the API's publisher uses the
same dict). Process model (ARCHITECTURE §4):

- one job per process at a time: prefork (``--concurrency N`` processes) or solo; never
  threads, because Pyro's param store and RNG are process-global;
- the parent process never imports torch (``worker.tasks`` imports ``inference``
  lazily), so no OpenMP/CUDA state exists before fork; each child imports the engine in
  ``worker_process_init`` (after fork) so the first job does not pay for it;
- pooled DB connections are dropped in each child after fork;
- GPU workers recycle their child after ``worker.gpu_max_tasks_per_child`` jobs
  (``vihub worker --queues gpu`` sets ``--max-tasks-per-child``).
"""

from __future__ import annotations

import logging

from celery import Celery, signals

from store.settings import Settings, celery_config, get_settings

log = logging.getLogger("vihub.worker")


def create_celery_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("vihub")
    app.conf.update(celery_config(settings))
    app.conf.imports = ("worker.tasks",)
    return app


app = create_celery_app()


@signals.worker_process_init.connect
def _after_fork(**_: object) -> None:
    from store.db import dispose_engines

    # Connections inherited from the parent must not be shared with it.
    dispose_engines()
    try:
        import inference.fit  # noqa: F401 - warm the engine import in the child, after fork
    except Exception:  # pragma: no cover - surfaced by the first job instead
        log.warning("could not preload the inference engine", exc_info=True)


# Importing the tasks registers them on ``app`` (celery -A worker.celery_app finds both).
import worker.tasks  # noqa: E402,F401
