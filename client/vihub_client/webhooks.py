"""Standard Webhooks (https://www.standardwebhooks.com) signing and verification.

A webhook request carries ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and
``webhook-signature``: a space-separated list of ``v1,<base64 HMAC-SHA256>`` entries over
``{webhook-id}.{webhook-timestamp}.{body}``, keyed with the base64-decoded secret that
follows ``whsec_``. ``verify_webhook`` accepts a request when any ``v1`` entry matches
(constant-time compare) and the timestamp is within 5 minutes of now, and returns the
parsed JSON body. ``sign_webhook`` produces the headers; the server reuses it to send.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vihub_client.errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 5 * 60


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    text = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise WebhookVerificationError("Invalid webhook secret", detail="the secret after 'whsec_' must be base64") from exc


def _body_bytes(body: str | bytes) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _timestamp(value: int | float | datetime | None) -> int:
    if value is None:
        return int(time.time())
    if isinstance(value, datetime):
        return int(value.timestamp())
    return int(value)


def generate_secret(num_bytes: int = 24) -> str:
    """A new ``whsec_...`` secret (base64 of random bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(num_bytes)).decode("ascii")


def signature(secret: str | bytes, msg_id: str, timestamp: int | float | datetime, body: str | bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">``."""
    to_sign = f"{msg_id}.{_timestamp(timestamp)}.".encode() + _body_bytes(body)
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_webhook(
    secret: str | bytes,
    body: str | bytes,
    *,
    msg_id: str | None = None,
    timestamp: int | float | datetime | None = None,
) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` (a fresh ``msg_...`` id and now by default)."""
    msg_id = msg_id or "msg_" + secrets.token_urlsafe(18)
    ts = _timestamp(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature(secret, msg_id, ts, body),
    }


def _header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    getter = getattr(headers, "get", None)
    value = getter(name) if getter else None
    if value is None and isinstance(headers, Mapping):
        lowered = {str(k).lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return value


def verify_webhook(
    headers: Mapping[str, str] | Any,
    body: str | bytes,
    secret: str | bytes,
    *,
    tolerance: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """Check a webhook request and return its JSON payload.

    ``headers``: any mapping (case-insensitive lookup: a dict, ``httpx.Headers``, a
    Starlette/Flask headers object); ``body``: the raw bytes as received (re-serialised
    JSON will not verify). Raises ``WebhookVerificationError`` on a missing header, a
    timestamp outside ``tolerance`` seconds of ``now``, or no matching ``v1`` signature.
    """
    msg_id = _header(headers, "webhook-id")
    ts_text = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not msg_id or not ts_text or not signatures:
        raise WebhookVerificationError(
            "Missing webhook headers", detail="webhook-id, webhook-timestamp and webhook-signature are required"
        )
    try:
        ts = int(ts_text)
    except ValueError as exc:
        raise WebhookVerificationError("Invalid webhook timestamp", detail=f"{ts_text!r} is not Unix seconds") from exc
    current = time.time() if now is None else now
    if ts < current - tolerance:
        raise WebhookVerificationError("Webhook timestamp too old", detail=f"{int(current - ts)} s old")
    if ts > current + tolerance:
        raise WebhookVerificationError("Webhook timestamp too new", detail=f"{int(ts - current)} s in the future")
    expected = signature(secret, msg_id, ts, body).split(",", 1)[1].encode("ascii")
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        if hmac.compare_digest(value.encode("ascii", "replace"), expected):
            try:
                return json.loads(_body_bytes(body))
            except ValueError as exc:
                raise WebhookVerificationError("Webhook body is not JSON", detail=str(exc)) from exc
    raise WebhookVerificationError("No matching webhook signature", detail="the body or the secret differ")
