"""Standard Webhooks (https://www.standardwebhooks.com) secrets and signatures, server side.

A secret is ``whsec_`` + base64 of random bytes; the HMAC key is the decoded bytes. A
message is signed as ``v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">``;
``webhook-signature`` carries one such entry per secret in use, space separated (during a
rotation the previous secret signs too, so receivers can switch at their own pace).

The SDK (``vihub_client.webhooks``) has the receiving half; the server never imports the
client, and the tests check this module against the SDK's ``verify_webhook`` and the
spec's test vector.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def generate_secret() -> str:
    """A new ``whsec_...`` secret (24 random bytes, base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret (the prefix is optional)."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``body``."""
    to_sign = f"{webhook_id}.{int(timestamp)}.".encode() + body
    digest = hmac.new(secret_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(signing_secrets: Iterable[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers, one signature per secret (newest first)."""
    signatures = [sign(secret, webhook_id, timestamp, body) for secret in signing_secrets]
    if not signatures:
        raise ValueError("at least one signing secret is needed")
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": " ".join(signatures),
    }
