"""The sweeper: nothing stays stuck, whatever the broker lost.

Every ``worker.sweeper_interval_s`` seconds, ``sweep_once``:

1. reclaims ``running`` jobs whose lease expired (their worker died or hung):
   - cancel requested -> ``cancelled``;
   - out of attempts -> ``failed`` (``too-many-attempts``);
   - otherwise -> ``queued`` and republished;
2. publishes ``queued`` jobs that were never handed to the broker (the API's publish
   failed, a worker released the job) once they are ``worker.requeue_after_s`` old;
3. republishes ``queued`` jobs whose message is genuinely lost (Redis restarted without
   persistence, a SIGKILLed embedded-broker consumer held it) — and only those. A job
   merely waiting its turn is left alone: per queue, the broker's message count is
   compared with the number of queued jobs already published to that queue; only the
   deficit (the least recently published jobs, last sent over ``requeue_after_s`` ago)
   is resent. When the broker cannot report its depth, a published job is resent only
   after ``worker.republish_after_s`` without a claim, backing off (``republish_due``).

Each transition is a guarded UPDATE, so any number of sweepers (one per ``vihub worker``)
may run at once; a duplicate publish is harmless because the worker's claim is atomic.
Publishing happens after the transaction that requeued the job has committed.

Run it with ``python -m worker.sweeper`` (``vihub worker`` and ``vihub up`` run it as a
thread of their own process, next to the Celery worker subprocess).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from common import problems
from common.broker import QUEUES, publisher_for
from common.settings import Settings, get_settings
from store.db import session_factory as default_session_factory
from store.job_states import JobState
from store.models import utcnow
from store.repositories import JobRepository
from worker.hooks import deliver_due_webhooks, on_job_finished

log = logging.getLogger("vihub.sweeper")

Publish = Callable[[str, str], None]
# Messages waiting in a broker queue, or None when the broker cannot say.
QueueDepth = Callable[[str], "int | None"]


def broker_queue_depth(settings: Settings) -> QueueDepth:
    """Messages ready in a queue of the configured broker; None on any error."""
    return publisher_for(settings).queue_depth


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    publish_errors: list[str] = field(default_factory=list)


def republish_due(job: Any, now: datetime, base_s: float) -> bool:
    """Whether a queued job's message should be sent again.

    A job may simply be waiting behind others, and every republish is a duplicate
    message then (harmless, the claim is atomic, but it inflates the queue). So the
    interval doubles with the time the job has already waited, capped at ten times the
    base: a message lost by the broker is resent within ``10 * requeue_after_s``, and a
    job waiting for hours is resent a handful of times, not every minute.
    """
    queued_at = job.queued_at or job.created_at
    last = job.published_at or queued_at
    interval = min(max(base_s, (last - queued_at).total_seconds()), 10 * base_s)
    return (now - last).total_seconds() >= interval


def sweep_once(
    settings: Settings | None = None,
    publish: Publish | None = None,
    factory: sessionmaker[Session] | None = None,
    queue_depth: QueueDepth | None = None,
) -> SweepReport:
    """One pass. ``publish`` and ``queue_depth`` default to the configured broker when
    ``publish`` is not given; with a ``publish`` but no ``queue_depth`` (tests), the
    depth is unknown and the time fallback applies."""
    settings = settings or get_settings()
    factory = factory or default_session_factory(settings)
    if publish is None:
        publish = publisher_for(settings).send
        if queue_depth is None:
            queue_depth = broker_queue_depth(settings)

    report = SweepReport()
    to_publish: list[tuple[str, str]] = []
    now = utcnow()

    with factory.begin() as session:
        repo = JobRepository(session)
        for job in repo.find_expired_leases(now):
            if job.cancel_requested:
                if repo.finish_expired(job.id, JobState.CANCELLED.value, None, now=now):
                    report.cancelled.append(job.id)
            elif job.attempts >= job.max_attempts:
                error = problems.problem(
                    problems.TOO_MANY_ATTEMPTS, "Too many attempts",
                    f"the job's worker stopped responding on each of {job.attempts} attempts",
                    attempts=job.attempts,
                )
                if repo.finish_expired(job.id, JobState.FAILED.value, error, now=now):
                    report.failed.append(job.id)
            elif repo.requeue_expired(job.id, now=now):
                report.requeued.append(job.id)
                to_publish.append((job.id, job.queue))
        base = settings.worker.requeue_after_s
        for job in repo.find_unpublished_queued(now - timedelta(seconds=base)):
            if job.id not in report.requeued:
                to_publish.append((job.id, job.queue))
        to_publish.extend(_lost_messages(repo, settings, now, queue_depth, {j for j, _ in to_publish}))

    for job_id in report.failed:
        on_job_finished(job_id, JobState.FAILED.value, settings)
    for job_id in report.cancelled:
        on_job_finished(job_id, JobState.CANCELLED.value, settings)

    for job_id, queue in to_publish:
        try:
            publish(job_id, queue)
        except Exception:
            log.warning("could not republish job %s; next sweep retries", job_id, exc_info=True)
            report.publish_errors.append(job_id)
            continue
        with factory.begin() as session:
            JobRepository(session).mark_published(job_id)
        if job_id not in report.requeued:
            report.republished.append(job_id)

    if report.requeued or report.republished or report.failed or report.cancelled or report.publish_errors:
        log.info(
            "sweep: requeued=%d republished=%d failed=%d cancelled=%d publish_errors=%d",
            len(report.requeued), len(report.republished), len(report.failed),
            len(report.cancelled), len(report.publish_errors),
        )
    return report


def _lost_messages(repo: JobRepository, settings: Settings, now: datetime,
                   queue_depth: QueueDepth | None, already: set[str]) -> list[tuple[str, str]]:
    """Published queued jobs whose broker message is (probably) gone."""
    base = settings.worker.requeue_after_s
    sent_before = now - timedelta(seconds=base)
    lost: list[tuple[str, str]] = []
    for queue in QUEUES:
        depth = queue_depth(queue) if queue_depth is not None else None
        if depth is None:
            # Blind: resend only jobs that have not been claimed for a long while.
            slow = settings.worker.republish_after_s
            for job in repo.find_stuck_queued(now - timedelta(seconds=slow)):
                if job.queue == queue and job.id not in already and republish_due(job, now, slow):
                    lost.append((job.id, job.queue))
            continue
        deficit = repo.count_published_queued(queue) - depth
        if deficit <= 0:
            continue  # every waiting job still has a message: they are waiting their turn
        for job in repo.find_published_queued(queue, limit=deficit):
            if job.id not in already and job.published_at is not None and job.published_at < sent_before:
                lost.append((job.id, job.queue))
    return lost


def _purge_expired_uploads(settings: Settings, factory: sessionmaker[Session] | None = None) -> list[str]:
    """Expired chunked uploads of every tenant: aborted, their parts deleted (a tenant that
    never starts another upload would otherwise hold its parts in the blob store forever)."""
    from store.blobs import blob_store
    from store.repositories.uploads import purge_expired

    try:
        return purge_expired(factory or default_session_factory(settings), blob_store(settings), utcnow())
    except Exception:  # noqa: BLE001 - the next sweep retries
        log.warning("could not purge expired uploads", exc_info=True)
        return []


class Sweeper(threading.Thread):
    """``sweep_once`` every ``worker.sweeper_interval_s`` until ``stop()``."""

    def __init__(self, settings: Settings | None = None, publish: Publish | None = None) -> None:
        super().__init__(name="vihub-sweeper", daemon=True)
        self.settings = settings or get_settings()
        self.publish = publish
        self.stopped = threading.Event()

    def run(self) -> None:
        log.info("sweeper started (every %.1f s)", self.settings.worker.sweeper_interval_s)
        while not self.stopped.is_set():
            try:
                sweep_once(self.settings, self.publish)
            except Exception:
                # The database may be restarting: keep going, the next sweep catches up.
                log.warning("sweep failed", exc_info=True)
            deliver_due_webhooks(self.settings)  # never raises
            _purge_expired_uploads(self.settings)  # never raises
            self.stopped.wait(self.settings.worker.sweeper_interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=timeout)


def main() -> None:
    """``python -m worker.sweeper``: run the sweeper in the foreground until SIGTERM/SIGINT."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s")
    sweeper = Sweeper(settings)
    done = threading.Event()

    def _stop(*_: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    sweeper.start()
    done.wait()
    sweeper.stop()


if __name__ == "__main__":
    main()
