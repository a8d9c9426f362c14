"""``Client.upload``: the chunked protocol against the real app (in process, so not a unit
test: the client-alone install cannot import the server), with a
connection that drops mid-upload; the next call resumes instead of restarting."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import vihub_client as vc
from vihub_client.errors import APIConnectionError

PART = 4096


@pytest.fixture
def app_transport(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from store.migrate import upgrade
    from common.settings import Settings

    monkeypatch.setenv("VIHUB_UPLOAD_STATE_DIR", str(tmp_path / "state"))
    url = f"sqlite:///{tmp_path / 'vihub.sqlite3'}"
    upgrade(url)
    settings = Settings(home=tmp_path, database_url=url, broker_url=f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}",
                        auth="disabled", uploads={"default_part_bytes": PART},
                        api={"dry_run_workers": 1, "warm_up_pool": False})
    app = create_app(settings)
    with TestClient(app) as client:
        yield client._transport


class Flaky(httpx.BaseTransport):
    """Forwards to the app; part PUTs after ``drop_after`` of them fail like a dropped
    connection (every retry too) until ``healed``; counts the parts that reached the app."""

    def __init__(self, inner: httpx.BaseTransport, drop_after: int | None) -> None:
        self.inner, self.drop_after, self.parts = inner, drop_after, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and "/parts/" in request.url.path:
            if self.drop_after is not None and len(self.parts) >= self.drop_after:
                raise httpx.RemoteProtocolError("peer closed connection", request=request)
            self.parts.append(int(request.url.path.rsplit("/", 1)[1]))
        return self.inner.handle_request(request)


def test_upload_resumes_after_a_dropped_connection(app_transport: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 3))
    path = tmp_path / "big.npz"
    np.savez(path, x=x, y=x.sum(axis=1))
    parts = -(-path.stat().st_size // PART)
    flaky = Flaky(app_transport, drop_after=3)
    seen: list[tuple[str, int, int]] = []
    with vc.Client("http://testserver", transport=flaky, retries=1, backoff=0.0) as client:
        with pytest.raises(APIConnectionError):
            client.upload(path, name="big", progress=lambda *a: seen.append(a))
    assert flaky.parts == [1, 2, 3]
    assert seen[-1][0] == "uploading" and seen[-1][1] == 3 * PART
    assert any(phase == "hashing" and done == path.stat().st_size for phase, done, _ in seen)

    healed = Flaky(app_transport, drop_after=None)
    with vc.Client("http://testserver", transport=healed) as client:
        dataset = client.upload(path, progress=False, name="big")
        assert healed.parts == list(range(4, parts + 1))  # resumed: parts 1-3 not sent again
        assert {f["name"]: f["shape"] for f in dataset.fields} == {"x": [3000, 3], "y": [3000]}
        assert dataset.name == "big" and dataset.size_bytes > 0
        # Done: the state file is gone, the same file again starts (and dedups) anew.
        again = client.upload(path, progress=False)
        assert again.id == dataset.id and again.created is False


def test_upload_an_array_or_a_dict(app_transport: Any) -> None:
    with vc.Client("http://testserver", transport=app_transport) as client:
        one = client.upload(np.arange(10.0), progress=False)
        assert [(f["name"], f["shape"]) for f in one.fields] == [("x", [10])]
        two = client.upload({"a": np.ones((2, 2)), "n": 3}, progress=False)
        assert {f["name"] for f in two.fields} == {"a", "n"}
        buffer = io.BytesIO()
        np.savez(buffer, a=np.ones((2, 2)), n=np.array(3))
        assert two.sha256 != hashlib.sha256(buffer.getvalue()).hexdigest()  # canonical, not the raw file


def test_cli_uploads_with_progress(app_transport: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from vihub_client import cli

    monkeypatch.setattr(cli, "_client", lambda url, key: vc.Client("http://testserver", transport=app_transport))
    path = tmp_path / "d.npz"
    np.savez(path, y=np.arange(2000.0))
    result = CliRunner().invoke(cli.datasets_app, ["upload", str(path), "--chunked"])
    assert result.exit_code == 0, result.output
    assert "uploading" in result.output and "y: float64 (2000,)" in result.output


def test_submit_with_a_large_data_file_uses_the_chunked_protocol(app_transport: Any, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from vihub_client import client as client_module

    monkeypatch.setattr(client_module, "CHUNKED_UPLOAD_BYTES", 1024)
    path = tmp_path / "d.npz"
    np.savez(path, x=np.arange(100.0), y=np.arange(100.0) * 2.0)
    counting = Flaky(app_transport, drop_after=None)
    source = "import pyro\nimport pyro.distributions as dist\n\ndef model(x, y):\n" \
             "    w = pyro.sample('w', dist.Normal(0.0, 1.0))\n" \
             "    with pyro.plate('data', x.shape[0]):\n" \
             "        pyro.sample('obs', dist.Normal(w * x, 1.0), obs=y)\n"
    with vc.Client("http://testserver", transport=counting) as client:
        report = client.validate(source, data=path, guide="AutoNormal")
    assert counting.parts, "the data file went up in parts"
    assert report.get("valid") is True
