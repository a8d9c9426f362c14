"""Webhook delivery: a signed POST when a job ends, retried with backoff, logged per attempt.

When a job reaches a final state and names ``webhook.url``, the sender POSTs the message
of ``common.webhooks.events`` signed per the Standard Webhooks spec with the tenant's
secret(s) (``common.webhooks.signing``); the ``webhook-timestamp`` is the time of the
attempt.

Who sends, and why:

- attempt 1: ``on_job_finished`` (worker or sweeper, after the final state committed)
  calls ``deliver(job_id)`` in-line: the receiver hears at once. It costs the worker at
  most the connect + read timeouts (``webhooks.connect_timeout_s``/``timeout_s``).
- retries: every attempt is a ``webhook_deliveries`` row. A failed one (no answer, or
  not 2xx) gets ``next_attempt_at = now + backoff_s(n, ...)`` (``common.webhooks.events``)
  until ``webhooks.max_attempts``. The sweeper calls ``deliver_due()`` each pass: it
  claims due rows with a guarded UPDATE and makes the next attempt. Being driven by the
  database, retries survive worker restarts and need no broker features (countdown
  messages would sit in a worker's memory, behind long jobs).
- an attempt is recorded *before* the request with ``next_attempt_at`` a little past its
  timeouts: if the sender dies mid-request, that row falls due and is retried
  (marked ``interrupted``). A unique (job_id, attempt) means two senders never both
  make attempt n.
- catch-up: a final job with a webhook and no attempt at all (cancelled by the API while
  queued — the API does not import the worker — or its worker died right after the
  commit) is found by the sweeper after ``webhooks.catch_up_after_s``.

Safety: the URL is resolved and checked at every attempt and the request goes to the
address that was checked (``common.webhooks.urls``), redirects are not followed, proxies
from the environment are not used, and the response body is never read. A URL refused by
the checks is not retried (the job's URL cannot become valid); a name that does not
resolve is.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from common.settings import Settings, get_settings
from common.webhooks.events import EVENTS, backoff_s, build_payload, encode_payload, webhook_id_for
from common.webhooks.signing import signed_headers
from common.webhooks.urls import Resolver, WebhookUrlRefused, resolve_webhook_url, system_resolver
from store.db import session_factory as default_session_factory
from store.models import utcnow
from store.repositories.webhooks import WebhookRepository

log = logging.getLogger("vihub.worker.webhooks")

USER_AGENT = "vihub-webhooks/1"
MAX_ERROR_CHARS = 1000

# When each database's catch-up scan last ran in this process (``webhooks.catch_up_every_s``).
_catch_up_lock = threading.Lock()
_last_catch_up: dict[str, float] = {}


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt did (also what the tests look at)."""

    job_id: str
    attempt: int
    status_code: int | None
    error: str | None
    delivered: bool
    next_attempt_at: datetime | None


class WebhookSender:
    """Makes attempts for jobs; ``settings``/``factory``/``transport`` are injectable for tests."""

    def __init__(
        self,
        settings: Settings | None = None,
        factory: sessionmaker[Session] | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver = system_resolver,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings or get_settings()
        self.factory = factory or default_session_factory(self.settings)
        self.transport = transport
        self.resolver = resolver
        self.rand = rand

    # -- entry points -------------------------------------------------------------------

    def deliver(self, job_id: str) -> AttemptOutcome | None:
        """Attempt 1 for a job that just ended; None when it has no webhook (or attempt 1
        was made by someone else)."""
        return self.attempt(job_id, 1)

    def deliver_due(self, now: datetime | None = None) -> list[AttemptOutcome]:
        """The sweeper's pass: due retries, then jobs that never had an attempt; up to
        ``webhooks.concurrency`` attempts at once."""
        cfg = self.settings.webhooks
        now = now or utcnow()
        with self.factory.begin() as session:
            due = WebhookRepository(session).claim_due(now, limit=cfg.batch_size)
        todo = [(d.job_id, d.attempt + 1) for d in due]
        if self._catch_up_due():
            with self.factory.begin() as session:
                missing = WebhookRepository(session).find_jobs_without_delivery(
                    now - timedelta(seconds=cfg.catch_up_max_age_s),
                    now - timedelta(seconds=cfg.catch_up_after_s),
                    limit=cfg.batch_size,
                )
            for job_id in missing:
                log.info("job %s: no webhook attempt recorded; sending now", job_id)
            todo += [(job_id, 1) for job_id in missing]
        if not todo:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(cfg.concurrency, len(todo))),
                                thread_name_prefix="vihub-webhook") as pool:
            results = list(pool.map(lambda item: self._attempt_quietly(*item), todo))
        return [outcome for outcome in results if outcome is not None]

    def _attempt_quietly(self, job_id: str, attempt: int) -> AttemptOutcome | None:
        try:
            return self.attempt(job_id, attempt)
        except Exception:  # one job's failure must not stop the others' retries
            log.exception("job %s: webhook attempt %d failed to run", job_id, attempt)
            return None

    def _catch_up_due(self) -> bool:
        key = self.settings.database.url
        with _catch_up_lock:
            last = _last_catch_up.get(key)
            now = time.monotonic()
            if last is not None and now - last < self.settings.webhooks.catch_up_every_s:
                return False
            _last_catch_up[key] = now
            return True

    # -- one attempt --------------------------------------------------------------------

    def attempt(self, job_id: str, attempt: int) -> AttemptOutcome | None:
        cfg = self.settings.webhooks
        if attempt > cfg.max_attempts:
            return None
        now = utcnow()
        with self.factory.begin() as session:
            repo = WebhookRepository(session)
            job = repo.finished_job(job_id)
            if job is None or job.url is None:
                return None
            event = EVENTS[job.state]
            webhook_id = webhook_id_for(job.id)
            # Past the request's own timeouts: only a sender that died leaves it due.
            in_flight_until = now + timedelta(seconds=cfg.connect_timeout_s + cfg.timeout_s + 60)
            delivery_id = repo.start_attempt(job.id, attempt, job.url, event, webhook_id, in_flight_until)
            if delivery_id is None:
                return None
            secrets = repo.signing_secrets(job.tenant_id, cfg.rotation_overlap_s, now)
        body = encode_payload(build_payload(job.id, job.state, job.finished_at))

        status_code, error, retry = self._post(job.url, body, secrets, webhook_id)
        delivered = status_code is not None and 200 <= status_code < 300
        finished = utcnow()
        next_attempt_at = None
        if not delivered and retry and attempt < cfg.max_attempts:
            next_attempt_at = finished + timedelta(
                seconds=backoff_s(attempt, cfg.backoff_base_s, cfg.backoff_max_s, self.rand))
        with self.factory.begin() as session:
            WebhookRepository(session).record_outcome(
                delivery_id, status_code=status_code, error=error,
                delivered_at=finished if delivered else None, next_attempt_at=next_attempt_at)
        outcome = AttemptOutcome(job.id, attempt, status_code, error, delivered, next_attempt_at)
        if delivered:
            log.info("job %s: webhook %s delivered (attempt %d, HTTP %d)", job.id, event, attempt, status_code)
        elif next_attempt_at is not None:
            log.info("job %s: webhook attempt %d failed (%s); next at %s", job.id, attempt,
                     error or f"HTTP {status_code}", next_attempt_at.isoformat())
        else:
            log.warning("job %s: webhook %s given up after attempt %d: %s", job.id, event, attempt,
                        error or f"HTTP {status_code}")
        return outcome

    def _post(self, url: str, body: bytes, secrets: list[str], webhook_id: str) -> tuple[int | None, str | None, bool]:
        """``(status_code, error, retryable)`` of one POST."""
        try:
            target = resolve_webhook_url(url, allow_private=self.settings.webhooks.allow_private,
                                         resolver=self.resolver)
        except WebhookUrlRefused as exc:
            return None, _clip(f"refused: {exc.reason}"), exc.retryable
        headers = {
            "host": target.host_header,
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **signed_headers(secrets, webhook_id, int(utcnow().timestamp()), body),
        }
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
        cfg = self.settings.webhooks
        timeout = httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s)
        try:
            with httpx.Client(transport=self.transport, timeout=timeout, follow_redirects=False,
                              trust_env=False) as client:
                request = client.build_request("POST", target.pinned_url, content=body, headers=headers,
                                               extensions=extensions)
                # The body is never read: a receiver's answer is its status code.
                response = client.send(request, stream=True)
                response.close()
        except httpx.HTTPError as exc:
            return None, _clip(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__), True
        error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        return response.status_code, error, True


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def deliver(job_id: str) -> AttemptOutcome | None:
    """Attempt 1 with the process settings (``worker.hooks.on_job_finished``)."""
    return WebhookSender().deliver(job_id)


def deliver_due(settings: Settings | None = None) -> list[AttemptOutcome]:
    """The sweeper's pass with the process (or given) settings."""
    return WebhookSender(settings).deliver_due()
