"""Retries on 429/503 honouring Retry-After, on connection errors, and idempotency keys."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
import vihub_client as vc
from client_fakes import job_json, problem
from vihub_client._http import parse_retry_after


def test_429_retry_after_is_honoured(server) -> None:
    server.add("GET", "/v1/jobs/j", problem(429, "rate", "Slow down", headers={"Retry-After": "3"}),
               httpx.Response(200, json=job_json("j")))
    with server.client() as client:
        assert client.job("j").id == "j"
    assert server.sleeps == [3.0]
    assert len(server.calls("GET", "/v1/jobs/j")) == 2


def test_503_without_retry_after_backs_off_exponentially(server) -> None:
    server.add("GET", "/v1/jobs/j", problem(503, "unavailable", "Unavailable"), problem(503, "unavailable", "Unavailable"),
               problem(503, "unavailable", "Unavailable"), httpx.Response(200, json=job_json("j")))
    with server.client(backoff=1.0) as client:
        client.job("j")
    assert len(server.sleeps) == 3
    # full jitter in [0.5, 1] x nominal 1, 2, 4
    for delay, nominal in zip(server.sleeps, (1.0, 2.0, 4.0), strict=True):
        assert nominal * 0.5 <= delay <= nominal


def test_retries_exhausted_raises_rate_limited(server) -> None:
    server.add("GET", "/v1/jobs/j", problem(429, "rate", "Slow down", headers={"Retry-After": "1"}))
    with server.client(retries=2) as client, pytest.raises(vc.RateLimited) as info:
        client.job("j")
    assert info.value.retry_after == 1.0
    assert len(server.calls("GET", "/v1/jobs/j")) == 3
    assert server.sleeps == [1.0, 1.0]


def test_no_retry_on_other_errors(server) -> None:
    server.add("GET", "/v1/jobs/j", problem(500, "internal-error", "Internal server error"))
    with server.client() as client, pytest.raises(vc.ServerError):
        client.job("j")
    assert len(server.requests) == 1 and server.sleeps == []


def test_connect_errors_are_retried_then_reported(server) -> None:
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    client = vc.Client("http://vihub.test", transport=httpx.MockTransport(refuse), retries=2)
    sleeps: list[float] = []
    client._transport.sleep = sleeps.append
    with pytest.raises(vc.APIConnectionError) as info:
        client.job("j")
    assert len(attempts) == 3 and len(sleeps) == 2
    assert "ConnectError" in (info.value.detail or "")


def test_submit_retries_with_the_same_idempotency_key(server) -> None:
    server.add("POST", "/v1/jobs", problem(503, "unavailable", "Unavailable", headers={"Retry-After": "0"}),
               httpx.Response(202, json=job_json("j")))
    with server.client() as client:
        client.submit("catalog:eight_schools_noncentered")
    keys = [r.headers.get("Idempotency-Key") for r in server.calls("POST", "/v1/jobs")]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]


def test_each_submit_gets_a_fresh_key_and_none_disables_it(server) -> None:
    server.add("POST", "/v1/jobs", httpx.Response(202, json=job_json("j")))
    with server.client() as client:
        client.submit("catalog:a")
        client.submit("catalog:a")
        client.submit("catalog:a", idempotency_key="mine")
        client.submit("catalog:a", idempotency_key=None)
    keys = [r.headers.get("Idempotency-Key") for r in server.calls("POST", "/v1/jobs")]
    assert keys[0] != keys[1] and keys[2] == "mine" and keys[3] is None


def test_post_without_key_is_not_resent_after_a_read_timeout() -> None:
    attempts = []

    def slow(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    client = vc.Client("http://vihub.test", transport=httpx.MockTransport(slow))
    client._transport.sleep = lambda s: None
    with pytest.raises(vc.APIConnectionError):
        client.submit("catalog:a", idempotency_key=None)
    assert len(attempts) == 1
    attempts.clear()
    with pytest.raises(vc.APIConnectionError):
        client.submit("catalog:a")  # with a key: safe to resend
    assert len(attempts) == 4


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(future) <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_huge_retry_after_is_capped(server) -> None:
    server.add("GET", "/v1/jobs/j", problem(503, "u", "Unavailable", headers={"Retry-After": "86400"}),
               httpx.Response(200, json=job_json("j")))
    with server.client() as client:
        client.job("j")
    assert server.sleeps == [120.0]


def test_async_client_retries_the_same_way(server) -> None:
    import asyncio

    server.add("GET", "/v1/jobs/j", problem(429, "rate", "Slow down", headers={"Retry-After": "2"}),
               httpx.Response(200, json=job_json("j", "running", 5)))

    async def go():
        async with server.async_client() as client:
            return await client.job("j")

    job = asyncio.run(go())
    assert job.state == "running" and job.progress.step == 5
    assert server.sleeps == [2.0]
