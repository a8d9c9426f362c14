"""Hooks called by the worker and the sweeper.

``on_job_finished(job_id, state, settings=None)`` runs after the transaction that put a
job in a final state has committed. It makes the first webhook delivery attempt
(``worker.webhooks``; retries are the sweeper's). It must never raise into the caller: a hook failure cannot
change a job's state. ``deliver_due_webhooks(settings)`` is the sweeper's retry pass.
"""

from __future__ import annotations

import logging

from store.settings import Settings

log = logging.getLogger("vihub.worker.hooks")


def on_job_finished(job_id: str, state: str, settings: Settings | None = None) -> None:
    try:
        log.info("job %s finished: %s", job_id, state)
        from worker.webhooks import WebhookSender

        WebhookSender(settings).deliver(job_id)
    except Exception:  # a hook never breaks the caller
        log.exception("on_job_finished hook failed for job %s", job_id)


def deliver_due_webhooks(settings: Settings | None = None) -> None:
    """The sweeper's webhook pass: due retries and jobs never attempted (never raises)."""
    try:
        from worker.webhooks import WebhookSender

        WebhookSender(settings).deliver_due()
    except Exception:  # the database may be restarting: the next pass catches up
        log.warning("webhook delivery pass failed", exc_info=True)
