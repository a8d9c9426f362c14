"""The Celery app of the vihub worker: ``celery -A worker.celery_app worker -Q cpu``.

Configuration comes from ``common.broker.celery_config`` (every publisher uses the
same dict). Process model (ARCHITECTURE §4; docs/operations.md, "Isolation"):

- one job per pool process at a time: prefork (``--concurrency N`` processes) or solo;
  never threads;
- the pool process is a *supervisor*: it claims the job, relays progress, checkpoints and
  results to the store, and never runs user code or torch. Each attempt's fit runs in a
  fresh child forked from the pool process's own forkserver (``inference.sandbox``;
  torch and the engine preloaded there once), under OS limits (``settings.sandbox``),
  and that child is thrown away after the job: one job's model can never see another's;
- the parent process never imports torch, so no OpenMP/CUDA state exists before fork;
- pooled DB connections are dropped in each pool process after fork;
- GPU workers recycle their pool process after ``worker.gpu_max_tasks_per_child`` jobs
  (``vihub worker --queues gpu`` sets ``--max-tasks-per-child``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, signals

from common.broker import celery_config
from common.settings import Settings, get_settings

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
    # Start this pool process's forkserver in the background: it imports torch and the
    # engine once, and every job then runs in a fresh child forked from it. The parent
    # waits only `worker_proc_alive_timeout` for the child's UP message, and importing
    # torch on a busy machine can take longer; a job arriving meanwhile simply waits.
    threading.Thread(target=_start_forkserver, name="vihub-forkserver", daemon=True).start()


@signals.worker_ready.connect
def _log_consumer_transport(sender: Any = None, **_: object) -> None:
    # Which transport the consumer really polls, and how often: the embedded broker's
    # dispatch latency is its polling interval (common.sql_broker).
    transport = getattr(getattr(sender, "connection", None), "transport", None)
    if transport is None:
        return
    name = f"{type(transport).__module__}.{type(transport).__qualname__}"
    if transport.implements.asynchronous:
        log.info("consuming with %s", name)
    else:
        log.info("consuming with %s, polling an empty queue every %g s", name, transport.polling_interval)


@signals.worker_process_shutdown.connect
def _before_exit(**_: object) -> None:
    # Pool processes leave through os._exit (no atexit): stop the forkserver explicitly.
    from inference import sandbox

    sandbox.shutdown()


def _start_forkserver() -> None:
    try:
        from inference import sandbox

        sandbox.add_preload("worker.job_sandbox")
        sandbox.warm_up()
    except Exception:  # pragma: no cover - the first job reports the real error
        log.warning("could not start the sandbox forkserver", exc_info=True)


# Importing the tasks registers them on ``app`` (celery -A worker.celery_app finds both).
import worker.tasks  # noqa: F401
