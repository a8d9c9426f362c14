"""Hooks called by the worker and the sweeper.

``on_job_finished(job_id, state)`` runs after the transaction that put a job in a final
state has committed. Webhook delivery (Standard Webhooks, recorded in
``webhook_deliveries``) is a later issue and will be called from here; today it only logs.
It must never raise into the caller: a hook failure cannot change a job's state.
"""

from __future__ import annotations

import logging

log = logging.getLogger("vihub.worker.hooks")


def on_job_finished(job_id: str, state: str) -> None:
    try:
        log.info("job %s finished: %s", job_id, state)
    except Exception:  # pragma: no cover - a hook never breaks the caller
        log.exception("on_job_finished hook failed for job %s", job_id)
