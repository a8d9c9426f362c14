"""API-process hardening: /metrics access and label cardinality, webhook address ranges,
JSON depth bombs, integers beyond int64 in job bodies, and the error boundary (a 500
never escapes the ASGI app, so a keep-alive connection survives it)."""

from __future__ import annotations

import ipaddress
import socket

import httpx
import pytest

from common.webhooks.urls import WebhookUrlRefused, address_refusal, embedded_ipv4, resolve_webhook_url

LINEAR = '''
import pyro
import pyro.distributions as dist

def model(x, y=None):
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(w * x, 1.0), obs=y)
'''


def job(data: dict) -> dict:
    return {"model": {"source": LINEAR}, "guide": {"auto": "AutoNormal"}, "data": {"inline": data},
            "inference": {"steps": 5, "seed": 0}}


# ---------------------------------------------------------------------------------------
# /metrics


def test_metrics_need_a_key_when_auth_is_required(client, headers, problem):
    problem(client.get("/metrics"), 401, "unauthorized")
    problem(client.get("/metrics", headers={"Authorization": "Bearer vihub_nope"}), 401, "unauthorized")
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200 and "vihub_http_requests_total" in response.text


def test_metrics_public_setting_and_auth_disabled_serve_without_a_key(tmp_path, app_factory):
    for auth, extra in (("required", {"api": {"metrics_public": True}}), ("disabled", {})):
        home = tmp_path / auth
        home.mkdir()
        for c in app_factory(home, auth=auth, **extra):
            assert c.get("/metrics").status_code == 200


def test_metric_labels_are_bounded(client, headers):
    for i in range(5):
        client.request(f"BREW{i}", f"/v1/jobs/{i}", headers=headers)
        client.get(f"/no/such/path/{i}", headers=headers)
        client.get(f"/v1/jobs/random-{i}", headers=headers)
    text = client.get("/metrics", headers=headers).text
    lines = [line for line in text.splitlines() if line.startswith("vihub_http_requests_total{")]
    assert not any("BREW" in line for line in lines)
    assert any('method="OTHER"' in line for line in lines)
    assert not any("random-" in line or "/no/such" in line for line in lines)
    assert any('route="/v1/jobs/{job_id}"' in line for line in lines)
    methods = {line.split('method="')[1].split('"')[0] for line in lines}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "OTHER"}


# ---------------------------------------------------------------------------------------
# Webhook address ranges (one address inside each range; all refused)


REFUSED = [
    "0.1.2.3", "10.1.1.1", "100.64.0.1", "100.127.255.254", "127.0.0.53", "169.254.169.254", "172.31.0.1",
    "192.0.0.8", "192.0.2.10", "192.88.99.1", "192.168.0.1", "198.18.0.1", "198.19.255.255",
    "198.51.100.7", "203.0.113.9", "224.0.0.251", "233.252.0.1", "240.0.0.1", "255.255.255.255",
    "::", "::1", "::ffff:8.8.8.8", "::8.8.8.8", "::ffff:0:808:808", "64:ff9b::808:808", "64:ff9b:1::1",
    "100::1", "100:0:0:1::1", "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:2::1",
    "2001:10::1", "2001:20::1", "2001:1::1", "2001:db8::1", "3fff::1", "2002:808:808::1", "5f00::1",
    "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1", "ff0e::1", "4000::1", "1::1",
]


@pytest.mark.parametrize("address", REFUSED)
def test_every_special_purpose_range_is_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), allow_private=False) is not None
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(WebhookUrlRefused, match="public"):
        resolve_webhook_url(f"https://{host}/hook", allow_private=False)
    with pytest.raises(WebhookUrlRefused):
        resolve_webhook_url("https://hooks.example.com/hook", allow_private=False,
                            resolver=lambda host, port: [address])


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize("address, embedded", [
    ("2002:c0a8:0101::1", "192.168.1.1"),  # 6to4
    ("2002:7f00:1::1", "127.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo (client bits inverted)
    ("64:ff9b::a00:1", "10.0.0.1"),  # NAT64 well-known prefix
    ("::ffff:169.254.169.254", "169.254.169.254"),
    ("::10.0.0.1", "10.0.0.1"),  # IPv4-compatible
])
def test_tunnelled_addresses_are_judged_by_their_embedded_ipv4(address: str, embedded: str) -> None:
    ip = ipaddress.ip_address(address)
    assert str(embedded_ipv4(ip)) == embedded
    reason = address_refusal(ip, allow_private=False)
    assert reason is not None and embedded in reason
    # With private addresses allowed (single-machine installs) the embedded address
    # decides; multicast / unspecified stay refused even then.
    assert address_refusal(ip, allow_private=True) is None
    assert address_refusal(ipaddress.ip_address("2002:e000:1::1"), allow_private=True) is not None  # 224.0.0.1
    assert address_refusal(ipaddress.ip_address("64:ff9b::"), allow_private=True) is not None  # 0.0.0.0


# ---------------------------------------------------------------------------------------
# JSON bodies: depth bombs (400) and integers beyond int64 (422)


DEPTH_BOMB = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/validate", "/v1/datasets", "/v1/jobs/x/predict"])
def test_a_json_depth_bomb_is_400_on_every_json_route(client, headers, path, problem):
    for content in (DEPTH_BOMB, b'{"data": {"inline": {"x": ' + DEPTH_BOMB + b"}}}"):
        response = client.post(path, headers={**headers, "Content-Type": "application/json"}, content=content)
        body = problem(response, 400, "malformed-request")
        assert body["depth"] >= 100_000 and body["limit"] >= 64
    # No content type: FastAPI parses it as JSON, so it is checked too.
    problem(client.post(path, headers=headers, content=DEPTH_BOMB), 400, "malformed-request")


def test_a_depth_bomb_in_a_json_file_upload_is_400(client, headers, problem):
    response = client.post("/v1/datasets", headers=headers,
                           files={"file": ("d.json", b'{"x": ' + DEPTH_BOMB + b"}", "application/json")})
    problem(response, 400, "malformed-request")


def test_nesting_within_the_limit_still_parses(client, headers):
    nested = [[[[[1.0, 2.0]]]]]
    response = client.post("/v1/datasets", headers=headers, json={"data": {"x": nested}})
    assert response.status_code == 201, response.text
    assert response.json()["fields"][0]["shape"] == [1, 1, 1, 1, 2]


@pytest.mark.parametrize("value, index", [(2**63, None), ([1.0, 2**63], [1]), ([[1, 2], [3, 2**64]], [1, 1]),
                                          ([-(2**63) - 1, 0], [0])])
def test_integers_beyond_int64_in_a_job_body_are_422_naming_the_field(client, headers, value, index, problem):
    response = client.post("/v1/jobs", headers=headers, json=job({"x": [0.0, 1.0], "y": value}))
    body = problem(response, 422, "invalid-data")
    assert body["pointer"] == "/data/inline/y" and "64-bit" in body["detail"]
    assert body.get("index") == index


# ---------------------------------------------------------------------------------------
# The error boundary


def test_an_internal_error_is_an_opaque_500_and_the_keep_alive_connection_survives(server, problem):
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        first = http.get("/_test/boom")
        body = problem(first, 500, "internal-error")
        assert "hunter2" not in first.text and "secret" not in first.text and "Traceback" not in first.text
        first_port = first.extensions["network_stream"].get_extra_info("client_addr")[1]
        second = http.get("/healthz")
        assert second.status_code == 200
        # The same TCP connection served both: the server did not drop it after the 500.
        assert second.extensions["network_stream"].get_extra_info("client_addr")[1] == first_port
    assert "unhandled error on GET /_test/boom" in server.log()
    assert body["instance"] == "/_test/boom"


def test_raw_socket_keep_alive_after_a_500(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for path, status in (("/_test/boom", b"500"), ("/healthz", b"200"), ("/_test/boom", b"500"),
                             ("/healthz", b"200")):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, f"connection closed before the answer to {path}"
                head += chunk
            header, _, rest = head.partition(b"\r\n\r\n")
            assert header.split(b" ")[1] == status, header
            length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(rest) < length:
                rest += sock.recv(4096)


def test_an_error_after_the_response_started_does_not_kill_the_server(server):
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        with pytest.raises(httpx.HTTPError):
            http.get("/_test/boom-midstream").read()
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200


def test_in_process_internal_errors_are_problems_too(client, headers, monkeypatch, problem):
    from api.datasets import service

    def explode(*args, **kwargs):
        raise KeyError("internal table name")

    monkeypatch.setattr(service, "list_datasets", explode)
    response = client.get("/v1/datasets", headers=headers)
    body = problem(response, 500, "internal-error")
    assert "internal table name" not in response.text
    assert body["detail"].startswith("An unexpected error")
    assert client.get("/healthz").status_code == 200


def test_new_key_helper_makes_distinct_tenants(client, key_for):
    assert key_for(client) != key_for(client)
