"""Hooks called by the worker and the sweeper.

``on_job_finished(job_id, state, settings=None)`` runs after the transaction that put a
job in a final state has committed. It makes the first webhook delivery attempt
(``worker.webhooks``; retries are the sweeper's). It must never raise into the caller: a hook failure cannot
change a job's state. ``deliver_due_webhooks(settings)`` is the sweeper's retry pass.
"""

from __future__ import annotations

import logging
import threading

from common.settings import Settings

log = logging.getLogger("vihub.worker.hooks")


def on_job_finished(job_id: str, state: str, settings: Settings | None = None) -> None:
    try:
        log.info("job %s finished: %s", job_id, state)
        from worker.webhooks import WebhookSender

        WebhookSender(settings).deliver(job_id)
    except Exception:  # a hook never breaks the caller
        log.exception("on_job_finished hook failed for job %s", job_id)


_webhook_pass = threading.Lock()


def deliver_due_webhooks(settings: Settings | None = None, *, wait: bool = False) -> bool:
    """Start the sweeper's webhook pass (due retries, jobs never attempted) in a thread.

    Slow receivers must not delay the sweeper's own work (reclaiming leases), so the pass
    runs beside it; while one pass is still sending, the next call starts none (returns
    False). ``wait=True`` runs it in the caller's thread. Never raises.
    """
    if not _webhook_pass.acquire(blocking=False):
        return False
    if wait:
        _run_webhook_pass(settings)
    else:
        threading.Thread(target=_run_webhook_pass, args=(settings,), name="vihub-webhooks", daemon=True).start()
    return True


def _run_webhook_pass(settings: Settings | None) -> None:
    try:
        from worker.webhooks import WebhookSender

        WebhookSender(settings).deliver_due()
    except Exception:  # the database may be restarting: the next pass catches up
        log.warning("webhook delivery pass failed", exc_info=True)
    finally:
        _webhook_pass.release()
