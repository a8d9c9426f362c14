"""Job-end webhooks: signing, URL checks, delivery with retries, the secret endpoints, and
one run through a real Celery worker + sweeper process to a receiver on 127.0.0.1.

The SDK's ``verify_webhook`` is the judge of every signature the server makes (the
server never imports the client; tests may import both).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from vihub_client import WebhookVerificationError, verify_webhook

from common.settings import Settings
from common.webhooks.events import backoff_s, build_payload, webhook_id_for
from common.webhooks.signing import generate_secret, sign, signed_headers
from common.webhooks.urls import (
    WebhookUrlRefused,
    parse_webhook_url,
    resolve_webhook_url,
    validate_webhook_url,
)
from store.job_states import JobState
from store.models import utcnow
from store.repositories import JobRepository
from store.repositories.webhooks import INTERRUPTED, WebhookRepository
from worker.webhooks import WebhookSender

# The Standard Webhooks test vector (standard-webhooks/standard-webhooks,
# libraries/python/tests/test_webhooks.py), as in tests/client/unit/test_client_webhooks.py.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

PUBLIC_IP = "93.184.215.14"


# ---- signing ----------------------------------------------------------------------------


def test_signer_matches_the_spec_test_vector() -> None:
    assert sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE
    headers = signed_headers([SPEC_SECRET], SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD)
    assert headers == {"webhook-id": SPEC_MSG_ID, "webhook-timestamp": str(SPEC_TIMESTAMP),
                       "webhook-signature": SPEC_SIGNATURE}
    assert verify_webhook(headers, SPEC_PAYLOAD, SPEC_SECRET, now=SPEC_TIMESTAMP) == {"test": 2432232314}


def test_two_secrets_during_a_rotation_verify_with_either() -> None:
    new, old = generate_secret(), generate_secret()
    assert new.startswith("whsec_") and new != old
    body = b'{"type":"job.succeeded"}'
    headers = signed_headers([new, old], "msg_1", SPEC_TIMESTAMP, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert verify_webhook(headers, body, secret, now=SPEC_TIMESTAMP)["type"] == "job.succeeded"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(headers, body, generate_secret(), now=SPEC_TIMESTAMP)


# ---- URL checks ---------------------------------------------------------------------


def fake_resolver(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return table[host]

    return resolve


NAMES = fake_resolver({
    "hooks.example.com": [PUBLIC_IP],
    "rebind.example.com": ["127.0.0.1"],
    "mixed.example.com": [PUBLIC_IP, "10.1.2.3"],
    "metadata.example.com": ["169.254.169.254"],
    "v6.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook",
    "http://127.0.0.2:8080/hook",
    "http://localhost:8000/hook",
    "http://api.localhost/hook",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.1.10/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://100.64.0.1/hook",  # shared address space (CGNAT)
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fd00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "http://rebind.example.com/hook",
    "http://mixed.example.com/hook",  # one private answer is enough to refuse
    "http://metadata.example.com/",
])
def test_internal_addresses_are_refused_by_default_and_allowed_by_the_setting(url: str) -> None:
    with pytest.raises(WebhookUrlRefused) as info:
        validate_webhook_url(url, allow_private=False, resolver=NAMES)
    assert not info.value.retryable and "public" in info.value.reason
    validate_webhook_url(url, allow_private=True, resolver=NAMES)


def test_numeric_host_forms_are_checked_after_resolution() -> None:
    # getaddrinfo reads "2130706433" and "0x7f.1" as 127.0.0.1: the resolved address decides.
    with pytest.raises(WebhookUrlRefused, match="loopback"):
        resolve_webhook_url("http://2130706433/hook", allow_private=False)
    with pytest.raises(WebhookUrlRefused, match="loopback"):
        resolve_webhook_url("http://0x7f.1/hook", allow_private=False)


@pytest.mark.parametrize("url, reason", [
    ("ftp://hooks.example.com/x", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("javascript:alert(1)", "http or https"),
    ("hooks.example.com/x", "http or https"),
    ("https://user:pass@hooks.example.com/x", "credentials"),
    ("https://token@hooks.example.com/x", "credentials"),
    ("https:///x", "no host"),
    ("https://hooks.example.com:0/x", "port"),
    ("https://hooks.example.com:99999/x", "malformed"),
    ("https://hooks.example.com/a b", "whitespace"),
    ("http://0.0.0.0/x", "unspecified"),
    ("http://224.0.0.1/x", "multicast"),
])
def test_bad_urls_are_refused_even_with_private_allowed(url: str, reason: str) -> None:
    for allow_private in (False, True):
        with pytest.raises(WebhookUrlRefused, match=reason):
            validate_webhook_url(url, allow_private=allow_private, resolver=NAMES)


def test_public_names_pass_and_the_request_is_pinned_to_the_checked_address() -> None:
    target = resolve_webhook_url("https://Hooks.Example.com:8443/in?x=1", allow_private=False, resolver=NAMES)
    assert target.pinned_url == f"https://{PUBLIC_IP}:8443/in?x=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.sni_hostname == "hooks.example.com"
    v6 = resolve_webhook_url("http://v6.example.com/", allow_private=False, resolver=NAMES)
    assert v6.pinned_url == "http://[2606:2800:220:1:248:1893:25c8:1946]:80/" and v6.sni_hostname is None
    assert parse_webhook_url("http://hooks.example.com").path_and_query == "/"


def test_an_unresolvable_name_is_accepted_at_submission_and_retryable_at_delivery() -> None:
    validate_webhook_url("https://not-yet.example.com/hook", allow_private=False, resolver=NAMES)
    with pytest.raises(WebhookUrlRefused) as info:
        resolve_webhook_url("https://not-yet.example.com/hook", allow_private=False, resolver=NAMES)
    assert info.value.retryable


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    assert [backoff_s(n, 2.0, 100.0, rand=lambda: 1.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 64, 100]
    assert backoff_s(5, 2.0, 100.0, rand=lambda: 0.0) == 0.0
    assert 0.0 <= backoff_s(3, 2.0, 100.0) <= 8.0


# ---- delivery against the store (both backends), receiver faked with a transport ------


class Receiver:
    """Answers with ``statuses`` in turn (then the last one); keeps every request."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return httpx.Response(status, text="ok" if status < 300 else "nope")


def _settings(db_url: str, **webhooks: Any) -> Settings:
    return Settings(database_url=db_url, webhooks_allow_private=False,
                    webhooks={"backoff_base_s": 0.0, "catch_up_after_s": 0.0, "catch_up_every_s": 0.0,
                              **webhooks})


def _finished_job(factory: Any, tenant_id: str, url: str | None, state: str = "succeeded") -> str:
    with factory.begin() as session:
        repo = JobRepository(session)
        job = repo.create(tenant_id=tenant_id, spec={"version": 1}, max_attempts=3,
                          webhook={"url": url} if url else None)
        if state == JobState.CANCELLED.value:
            repo.request_cancel(job.id)
        else:
            repo.claim(job.id, "w", lease_seconds=60)
            repo.finish(job.id, state, worker_id="w")
        return job.id


def _rows(factory: Any, job_id: str) -> list[Any]:
    with factory.begin() as session:
        return WebhookRepository(session).list_for_job(job_id)


def _secret(factory: Any, tenant_id: str) -> str:
    with factory.begin() as session:
        return WebhookRepository(session).get_or_create_secret(tenant_id)


def _retry_until_done(sender: WebhookSender, job_id: str, passes: int = 20) -> None:
    for _ in range(passes):
        sender.deliver_due()
        rows = _rows(sender.factory, job_id)
        if rows and all(r.next_attempt_at is None for r in rows):
            return
    pytest.fail(f"deliveries of {job_id} still pending after {passes} passes")


def test_failing_receiver_is_retried_until_it_accepts(migrated_db: str, session_factory: Any, tenant: Any) -> None:
    receiver = Receiver([500, 503, 204])
    sender = WebhookSender(_settings(migrated_db), session_factory, transport=httpx.MockTransport(receiver),
                           resolver=NAMES)
    job_id = _finished_job(session_factory, tenant.id, "https://hooks.example.com/vihub?src=test")

    first = sender.deliver(job_id)
    assert first is not None and first.status_code == 500 and not first.delivered
    assert first.next_attempt_at is not None
    assert sender.deliver(job_id) is None  # attempt 1 is made once, whoever asks again
    _retry_until_done(sender, job_id)

    rows = _rows(session_factory, job_id)
    assert [(r.attempt, r.status_code) for r in rows] == [(1, 500), (2, 503), (3, 204)]
    assert [r.error for r in rows] == ["HTTP 500", "HTTP 503", None]
    assert rows[-1].delivered_at is not None and all(r.delivered_at is None for r in rows[:-1])
    assert {r.event for r in rows} == {"job.succeeded"}
    assert {r.webhook_id for r in rows} == {webhook_id_for(job_id)}

    secret = _secret(session_factory, tenant.id)
    bodies = set()
    for request in receiver.requests:
        assert request.url.host == PUBLIC_IP and request.url.path == "/vihub" and request.url.query == b"src=test"
        assert request.headers["host"] == "hooks.example.com"
        assert request.extensions["sni_hostname"] == "hooks.example.com"
        assert request.headers["webhook-id"] == webhook_id_for(job_id)
        payload = verify_webhook(request.headers, request.content, secret)
        assert payload["type"] == "job.succeeded" and payload["data"] == {"id": job_id, "state": "succeeded"}
        bodies.add(request.content)
    assert len(bodies) == 1  # the same message on every attempt


def test_attempts_are_capped(migrated_db: str, session_factory: Any, tenant: Any) -> None:
    receiver = Receiver([500])
    sender = WebhookSender(_settings(migrated_db, max_attempts=3), session_factory,
                           transport=httpx.MockTransport(receiver), resolver=NAMES)
    job_id = _finished_job(session_factory, tenant.id, "https://hooks.example.com/h", state="failed")
    sender.deliver(job_id)
    _retry_until_done(sender, job_id)
    sender.deliver_due()
    rows = _rows(session_factory, job_id)
    assert [r.status_code for r in rows] == [500, 500, 500] and len(receiver.requests) == 3
    assert all(r.next_attempt_at is None and r.delivered_at is None for r in rows)
    assert {r.event for r in rows} == {"job.failed"}


def test_connection_errors_are_recorded_and_retried(migrated_db: str, session_factory: Any, tenant: Any) -> None:
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectTimeout("timed out", request=request)
        return httpx.Response(200)

    sender = WebhookSender(_settings(migrated_db), session_factory, transport=httpx.MockTransport(flaky),
                           resolver=NAMES)
    job_id = _finished_job(session_factory, tenant.id, "https://hooks.example.com/h")
    sender.deliver(job_id)
    _retry_until_done(sender, job_id)
    rows = _rows(session_factory, job_id)
    assert rows[0].status_code is None and "ConnectTimeout" in rows[0].error
    assert rows[1].status_code == 200 and rows[1].delivered_at is not None


def test_dns_rebinding_to_an_internal_address_is_refused_at_delivery(
    migrated_db: str, session_factory: Any, tenant: Any,
) -> None:
    receiver = Receiver([200])
    sender = WebhookSender(_settings(migrated_db), session_factory, transport=httpx.MockTransport(receiver),
                           resolver=NAMES)
    # Accepted when submitted (the name resolved publicly, or not at all), now points inside.
    job_id = _finished_job(session_factory, tenant.id, "https://rebind.example.com/h")
    outcome = sender.deliver(job_id)
    assert outcome is not None and not outcome.delivered and outcome.next_attempt_at is None
    assert receiver.requests == []
    [row] = _rows(session_factory, job_id)
    assert row.error.startswith("refused:") and "loopback" in row.error and row.next_attempt_at is None


def test_no_webhook_no_delivery_and_redirects_are_not_followed(
    migrated_db: str, session_factory: Any, tenant: Any,
) -> None:
    receiver = Receiver([307])
    sender = WebhookSender(_settings(migrated_db, max_attempts=1), session_factory,
                           transport=httpx.MockTransport(receiver), resolver=NAMES)
    assert sender.deliver(_finished_job(session_factory, tenant.id, None)) is None
    job_id = _finished_job(session_factory, tenant.id, "https://hooks.example.com/h")
    outcome = sender.deliver(job_id)
    assert outcome is not None and outcome.status_code == 307 and not outcome.delivered
    assert len(receiver.requests) == 1


def test_sweeper_catches_up_jobs_never_attempted_and_interrupted_attempts(
    migrated_db: str, session_factory: Any, tenant: Any,
) -> None:
    receiver = Receiver([200])
    sender = WebhookSender(_settings(migrated_db), session_factory, transport=httpx.MockTransport(receiver),
                           resolver=NAMES)
    # Cancelled by the API while queued: no worker hook ran.
    cancelled = _finished_job(session_factory, tenant.id, "https://hooks.example.com/c", state="cancelled")
    # A sender died mid-request: its attempt row is in flight with a lease in the past.
    interrupted = _finished_job(session_factory, tenant.id, "https://hooks.example.com/i")
    with session_factory.begin() as session:
        WebhookRepository(session).start_attempt(
            interrupted, 1, "https://hooks.example.com/i", "job.succeeded", webhook_id_for(interrupted),
            utcnow() - timedelta(seconds=1))
    no_webhook = _finished_job(session_factory, tenant.id, None, state="cancelled")  # JSON null
    with session_factory.begin() as session:
        never_attempted = WebhookRepository(session).find_jobs_without_delivery(
            utcnow() - timedelta(hours=1), utcnow(), limit=10_000)
    assert cancelled in never_attempted and no_webhook not in never_attempted and interrupted not in never_attempted
    sender.deliver_due()
    cancelled_rows, interrupted_rows = _rows(session_factory, cancelled), _rows(session_factory, interrupted)
    assert [(r.attempt, r.event, r.status_code) for r in cancelled_rows] == [(1, "job.cancelled", 200)]
    assert [(r.attempt, r.status_code, r.error) for r in interrupted_rows] == [(1, None, INTERRUPTED), (2, 200, None)]
    secret = _secret(session_factory, tenant.id)
    payloads = [verify_webhook(r.headers, r.content, secret) for r in receiver.requests]
    assert {p["data"]["id"] for p in payloads} >= {cancelled, interrupted}


# ---- the secret endpoints -----------------------------------------------------------


@pytest.fixture
def api_client(migrated_db: str, tmp_path: Path) -> Iterator[tuple[Any, Callable[[], dict[str, str]], Any]]:
    """(TestClient, new_tenant_headers(), sessionmaker) on the test database, auth required."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.repositories.api_keys import ApiKeyRepository
    from store.repositories.tenants import TenantRepository

    settings = Settings(home=tmp_path, database_url=migrated_db, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}",
                        auth="required", webhooks={"rotation_overlap_s": 3600})
    settings.api = settings.api.model_copy(update=dict(dry_run_workers=1, warm_up_pool=False))
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        factory = app.state.runtime.sessionmaker

        def new_tenant() -> dict[str, str]:
            key = generate_api_key()
            with factory.begin() as session:
                tenant = TenantRepository(session).create(f"t-{uuid.uuid4().hex[:10]}")
                ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
            return {"Authorization": f"Bearer {key}", "X-Tenant-Id": tenant.id}

        yield client, new_tenant, factory


def test_secret_is_made_once_per_tenant_and_rotates(api_client: Any) -> None:
    client, new_tenant, factory = api_client
    headers, other = new_tenant(), new_tenant()
    first = client.get("/v1/webhooks/secret", headers=headers)
    assert first.status_code == 200, first.text
    secret = first.json()["secret"]
    assert secret.startswith("whsec_") and first.json()["previous_valid_until"] is None
    assert client.get("/v1/webhooks/secret", headers=headers).json()["secret"] == secret
    assert client.get("/v1/webhooks/secret", headers=other).json()["secret"] != secret

    rotated = client.post("/v1/webhooks/secret/rotate", headers=headers)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != secret and rotated.json()["previous_valid_until"] is not None
    assert client.get("/v1/webhooks/secret", headers=headers).json()["secret"] == new
    with factory.begin() as session:
        signing = WebhookRepository(session).signing_secrets(headers["X-Tenant-Id"], overlap_s=3600)
    assert signing == [new, secret]  # the old secret keeps signing during the overlap

    denied = client.get("/v1/webhooks/secret")
    assert denied.status_code == 401
    assert denied.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("url, detail", [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://192.168.0.10/hook", "private"),
    ("https://user:pw@hooks.example.com/hook", "credentials"),
])
def test_submitting_an_internal_webhook_url_is_422_with_a_pointer(api_client: Any, url: str, detail: str) -> None:
    client, new_tenant, _ = api_client
    body = {"model": {"catalog": "eight_schools_noncentered"}, "guide": {"auto": "AutoNormal"},
            "inference": {"steps": 10}, "webhook": {"url": url}}
    response = client.post("/v1/jobs", json=body, headers=new_tenant())
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "https://vihub.dev/problems/invalid-webhook-url"
    assert problem["pointer"] == "/webhook/url" and problem["errors"][0]["pointer"] == "/webhook/url"
    assert detail in problem["detail"]


def test_a_non_http_scheme_is_422_at_the_schema(api_client: Any) -> None:
    client, new_tenant, _ = api_client
    body = {"model": {"catalog": "eight_schools_noncentered"}, "guide": {"auto": "AutoNormal"},
            "inference": {"steps": 10}, "webhook": {"url": "ftp://hooks.example.com/x"}}
    response = client.post("/v1/jobs", json=body, headers=new_tenant())
    assert response.status_code == 422
    assert [e["pointer"] for e in response.json()["errors"]] == ["/webhook/url"]


# ---- end to end: real worker and sweeper processes, a receiver on 127.0.0.1 ------------


class LocalReceiver:
    """A threaded HTTP server on 127.0.0.1 answering 500 ``failures`` times, then 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.lock:
                    outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = 500 if len(outer.received) <= outer.failures else 204
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/vihub"

    def __enter__(self) -> LocalReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.mark.integration
def test_real_job_through_worker_and_sweeper_delivers_signed_webhook_with_retries(
    pg_url: str, redis_url: str, tmp_path: Path, session_factory_for: Any, celery_worker_proc: Any,
    sweeper_proc: Any, make_settings_env: Any, env_settings: Any, create_job_in: Any, make_spec: Any,
    wait_until: Any,
) -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.broker import publish_job
    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.repositories.api_keys import ApiKeyRepository
    from store.repositories.tenants import TenantRepository

    factory = session_factory_for(pg_url)
    env = make_settings_env(
        pg_url, redis_url, home=tmp_path,
        webhooks_allow_private="true",
        webhooks__backoff_base_s=0.3, webhooks__catch_up_after_s=3600,
        worker__sweeper_interval_s=0.3, worker__progress_every_s=0.2, worker__heartbeat_seconds=1,
        worker__lease_seconds=10,
    )
    settings = env_settings(env)
    key = generate_api_key()
    with factory.begin() as session:
        tenant = TenantRepository(session).create(f"t-{uuid.uuid4().hex[:10]}")
        ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))

    with LocalReceiver(failures=2) as receiver:
        # The job as the API stores it; the API refuses 127.0.0.1 unless the setting allows it.
        settings.api = settings.api.model_copy(update=dict(dry_run_workers=1, warm_up_pool=False))
        app = create_app(settings)
        with TestClient(app, raise_server_exceptions=False) as client:
            auth = {"Authorization": f"Bearer {key}"}
            secret = client.get("/v1/webhooks/secret", headers=auth).json()["secret"]

        worker = celery_worker_proc(env)
        sweeper = sweeper_proc(env)
        job_id = create_job_in(factory, tenant.id, spec=make_spec(steps=30))
        with factory.begin() as session:  # the API stores {"url": ...} on the job row
            JobRepository(session).get(job_id).webhook = {"url": receiver.url}
        publish_job(job_id, "cpu", settings)

        rows = wait_until(lambda: [r for r in _rows(factory, job_id) if r.delivered_at is not None] and
                          _rows(factory, job_id), 150, interval=0.3, message="the webhook to be delivered")

    with factory.begin() as session:
        assert JobRepository(session).get(job_id).state == "succeeded"
    assert [(r.attempt, r.status_code) for r in rows] == [(1, 500), (2, 500), (3, 204)]
    assert rows[0].next_attempt_at is None and rows[-1].delivered_at is not None
    assert len(receiver.received) == 3
    ids = set()
    for headers, body in receiver.received:
        payload = verify_webhook(headers, body, secret)
        assert payload["type"] == "job.succeeded"
        assert payload["data"] == {"id": job_id, "state": "succeeded"}
        assert payload["timestamp"].endswith("Z")
        assert headers["content-type"] == "application/json"
        ids.add(headers["webhook-id"])
    assert ids == {webhook_id_for(job_id)}
    assert json.loads(receiver.received[0][1]) == build_payload(
        job_id, "succeeded", _job_finished_at(factory, job_id))
    # Attempt 1 came from the worker's hook, the retries from the sweeper process.
    assert f"job {job_id}: webhook attempt 1 failed" in worker.log()
    assert f"job {job_id}: webhook attempt 2 failed" in sweeper.log()
    assert f"job {job_id}: webhook job.succeeded delivered (attempt 3" in sweeper.log()


def _job_finished_at(factory: Any, job_id: str) -> Any:
    with factory.begin() as session:
        return JobRepository(session).get(job_id).finished_at
