"""The Celery app of the vihub worker: ``celery -A worker.celery_app worker -Q cpu``.

Configuration comes from ``store.settings.celery_config`` (the API's publisher uses the
same dict). Process model (ARCHITECTURE §4):

- one job per process at a time: prefork (``--concurrency N`` processes) or solo; never
  threads, because Pyro's param store and RNG are process-global;
- the parent process never imports torch (``worker.tasks`` imports ``inference``
  lazily), so no OpenMP/CUDA state exists before fork; each child imports the engine
  right after fork, in a background thread;
- pooled DB connections are dropped in each child after fork;
- GPU workers recycle their child after ``worker.gpu_max_tasks_per_child`` jobs
  (``vihub worker --queues gpu`` sets ``--max-tasks-per-child``).
"""

from __future__ import annotations

import logging
import threading

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
    # Warm the engine import (torch, pyro) after fork, in the background: the parent
    # waits only `worker_proc_alive_timeout` for the child's UP message, and importing
    # torch on a busy machine can take longer. A job arriving meanwhile simply waits on
    # the import lock.
    threading.Thread(target=_preload_engine, name="vihub-preload", daemon=True).start()


def _preload_engine() -> None:
    try:
        import inference.fitting  # noqa: F401
    except Exception:  # pragma: no cover - the first job reports the real error
        log.warning("could not preload the inference engine", exc_info=True)


# Importing the tasks registers them on ``app`` (celery -A worker.celery_app finds both).
import worker.tasks  # noqa: F401
