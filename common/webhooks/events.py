"""The job-end webhook message and its timing.

A job in a final state that names ``webhook.url`` gets one message, ``EVENTS[state]``,
with the thin payload ``{"type": "job.succeeded"|"job.failed"|"job.cancelled",
"timestamp": <the job's finished_at, ISO 8601>, "data": {"id": ..., "state": ...}}``.
The body and ``webhook-id`` are the same on every attempt (receivers deduplicate on the
id); retries wait ``backoff_s`` ("full jitter"); after a secret rotation the previous
secret keeps signing until ``previous_secret_valid_until``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

EVENTS = {"succeeded": "job.succeeded", "failed": "job.failed", "cancelled": "job.cancelled"}


def webhook_id_for(job_id: str) -> str:
    """The Standard Webhooks message id: one message per job (a job ends once)."""
    return "msg_" + job_id.replace("-", "")


def build_payload(job_id: str, state: str, finished_at: datetime | None) -> dict[str, Any]:
    when = (finished_at or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z")
    return {"type": EVENTS[state], "timestamp": when, "data": {"id": job_id, "state": state}}


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(attempt: int, base_s: float, max_s: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): uniform(0, min(max_s,
    base_s * 2**(attempt-1))), so retries of many receivers that failed together spread out."""
    ceiling = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return rand() * ceiling


def previous_secret_valid_until(rotated_at: datetime | None, overlap_s: float) -> datetime | None:
    """Until when the secret replaced at ``rotated_at`` still signs (None: never rotated)."""
    if rotated_at is None:
        return None
    return rotated_at + timedelta(seconds=overlap_s)
