"""Nothing outlives a killed server: ``vihub up`` and ``vihub api`` after SIGKILL.

``vihub up`` starts a Celery worker (its own process group, with pool processes, each with
a sandbox forkserver) and the API (with its own forkserver for dry runs). A SIGKILL
leaves no chance to clean up, so the kernel must do it: parent-death signals on the
worker and on every sandbox, and forkservers that exit when their parent's pipe closes.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
from live_deploy import free_port, kill_processes_of, processes_of, spawn, wait_healthy

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", ["up", "api"])
def test_sigkill_of_the_server_leaves_no_process_behind(command: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIHUB_")}
    env.update({"VIHUB_HOME": str(home), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    if command == "api":
        from store.migrate import upgrade

        home.mkdir(parents=True)
        upgrade(f"sqlite:///{home / 'vihub.sqlite3'}")
    log_path = tmp_path / "server.log"
    proc = spawn([sys.executable, "-c", "from vihub.cli import main; main()", command, "--port", str(port)],
                 env, log_path)
    try:
        wait_healthy(proc, base, log_path, timeout=120)
        # A dry run makes sure the API's forkserver (and, for `up`, the worker) is running.
        response = httpx.post(f"{base}/v1/validate", timeout=120, json={
            "model": {"catalog": "eight_schools_noncentered"}, "guide": {"auto": "AutoNormal"}})
        assert response.status_code == 200, response.text
        started = processes_of(home)
        assert len(started) >= 2, started  # the server and at least its forkserver
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and processes_of(home):
            time.sleep(0.5)
        left = processes_of(home)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_processes_of(home)
    assert not left, f"`vihub {command}` left processes behind after SIGKILL: {left}"
