"""A real S3-protocol server for tests: moto's stand-alone server in a process of its own.

``start_s3_server(tmp_path) -> S3Server`` (url, stop()); ``s3_settings_env(url, bucket)``
gives the ``VIHUB_BLOBS__*`` variables that point a vihub process at it. Importable as
``s3_server`` (``tests/`` is on ``sys.path`` through its conftest).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# moto accepts any credentials; boto3 only needs some to sign with.
S3_KEY_ID, S3_SECRET = "testing", "testing"


@dataclass
class S3Server:
    url: str
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3_server(log_dir: Path, timeout: float = 60.0) -> S3Server:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("moto[server] is not installed (CI=true: the S3 tests must run)")
        pytest.skip("moto[server] is not installed")
    port = _free_port()
    log = open(log_dir / f"moto-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with {proc.returncode}")
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            return S3Server(url, proc)
        except httpx.HTTPError:
            time.sleep(0.2)
    S3Server(url, proc).stop()
    raise TimeoutError("moto server did not start")


def s3_settings_env(url: str, bucket: str | None = None) -> dict[str, str]:
    return {
        "VIHUB_BLOBS__BACKEND": "s3",
        "VIHUB_BLOBS__S3_ENDPOINT_URL": url,
        "VIHUB_BLOBS__S3_BUCKET": bucket or f"vihub-test-{uuid.uuid4().hex[:8]}",
        "VIHUB_BLOBS__S3_ACCESS_KEY_ID": S3_KEY_ID,
        "VIHUB_BLOBS__S3_SECRET_ACCESS_KEY": S3_SECRET,
        "VIHUB_BLOBS__S3_CREATE_BUCKET": "true",
    }
