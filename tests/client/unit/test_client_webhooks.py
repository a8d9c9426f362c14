"""Standard Webhooks signing and verification, including the spec library's test vector
(standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py)."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import httpx
import pytest
from vihub_client import WebhookVerificationError, generate_secret, sign_webhook, verify_webhook
from vihub_client.webhooks import signature

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_spec_test_vector() -> None:
    assert signature(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE
    # the prefix is optional, bytes and datetimes work too
    assert signature(SPEC_SECRET[len("whsec_"):], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD.encode()) == SPEC_SIGNATURE
    when = datetime.fromtimestamp(SPEC_TIMESTAMP, tz=timezone.utc)
    headers = sign_webhook(SPEC_SECRET, SPEC_PAYLOAD, msg_id=SPEC_MSG_ID, timestamp=when)
    assert headers == {"webhook-id": SPEC_MSG_ID, "webhook-timestamp": str(SPEC_TIMESTAMP),
                       "webhook-signature": SPEC_SIGNATURE}
    assert verify_webhook(headers, SPEC_PAYLOAD, SPEC_SECRET, now=SPEC_TIMESTAMP + 10) == {"test": 2432232314}


def test_round_trip_with_fresh_secret_and_case_insensitive_headers() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 24
    body = b'{"type": "job.succeeded", "timestamp": "2026-11-27T13:00:00Z", "data": {"id": "job_1"}}'
    headers = httpx.Headers({k.title(): v for k, v in sign_webhook(secret, body).items()})
    payload = verify_webhook(headers, body, secret)
    assert payload["type"] == "job.succeeded" and payload["data"] == {"id": "job_1"}
    upper = {k.upper(): v for k, v in sign_webhook(secret, body).items()}  # a plain dict, other case
    assert verify_webhook(upper, body, secret)["data"]["id"] == "job_1"


def test_multiple_signatures_any_v1_match_accepts() -> None:
    headers = sign_webhook(SPEC_SECRET, SPEC_PAYLOAD, msg_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP)
    headers["webhook-signature"] = " ".join([
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
        headers["webhook-signature"],
    ])
    assert verify_webhook(headers, SPEC_PAYLOAD, SPEC_SECRET, now=SPEC_TIMESTAMP)["test"] == 2432232314


@pytest.mark.parametrize("mutate", [
    lambda h, b: (h | {"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}, b),  # wrong sig
    lambda h, b: (h, b.replace("2432232314", "2432232315")),  # tampered body
    lambda h, b: (h | {"webhook-id": "msg_other"}, b),  # signature bound to the id
    lambda h, b: (h | {"webhook-signature": h["webhook-signature"].replace("v1,", "v2,")}, b),  # unknown version
    lambda h, b: ({k: v for k, v in h.items() if k != "webhook-id"}, b),
    lambda h, b: ({k: v for k, v in h.items() if k != "webhook-timestamp"}, b),
    lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    lambda h, b: (h | {"webhook-timestamp": "hello"}, b),
])
def test_bad_requests_are_refused(mutate) -> None:
    headers = sign_webhook(SPEC_SECRET, SPEC_PAYLOAD, msg_id=SPEC_MSG_ID, timestamp=SPEC_TIMESTAMP)
    headers, body = mutate(dict(headers), SPEC_PAYLOAD)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, SPEC_SECRET, now=SPEC_TIMESTAMP)


def test_wrong_secret_is_refused() -> None:
    headers = sign_webhook(SPEC_SECRET, SPEC_PAYLOAD)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, SPEC_PAYLOAD, generate_secret())


def test_timestamp_tolerance_is_five_minutes() -> None:
    headers = sign_webhook(SPEC_SECRET, SPEC_PAYLOAD, timestamp=SPEC_TIMESTAMP)
    assert verify_webhook(headers, SPEC_PAYLOAD, SPEC_SECRET, now=SPEC_TIMESTAMP + 300)
    assert verify_webhook(headers, SPEC_PAYLOAD, SPEC_SECRET, now=SPEC_TIMESTAMP - 300)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(headers, SPEC_PAYLOAD, SPEC_SECRET, now=SPEC_TIMESTAMP + 301)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verify_webhook(headers, SPEC_PAYLOAD, SPEC_SECRET, now=SPEC_TIMESTAMP - 301)
