"""Starting and stopping real deployments for end-to-end tests (e2e, security).

Plain helpers, importable as ``live_deploy`` (``tests/`` is on ``sys.path`` through its
conftest): free ports, process groups started and stopped the way an operator does, an
API key made straight in the store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, base: str, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"server not ready:\n{log_path.read_text(errors='replace')[-3000:]}")


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=str(REPO))
    log.close()
    return proc


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group (uvicorn / `vihub up` stop their children), then KILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=5)


def processes_of(home: Path) -> list[int]:
    """Live (not zombie) processes started for this test, found by their VIHUB_HOME
    (``/proc/<pid>/environ`` keeps the environment a process was started with)."""
    needle = f"VIHUB_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0") and \
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def kill_processes_of(home: Path, grace_s: float = 10.0) -> list[int]:
    """SIGKILL processes started for this test that are still alive ``grace_s`` after the
    server stopped (children exit asynchronously after their parent); returns their pids."""
    deadline = time.monotonic() + grace_s
    while (found := processes_of(home)) and time.monotonic() < deadline:
        time.sleep(0.25)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def make_key(database_url: str) -> str:
    from sqlalchemy.orm import sessionmaker

    from common.keys import display_prefix, generate_api_key, hash_api_key
    from store.db import make_engine
    from store.repositories import ApiKeyRepository, TenantRepository

    engine = make_engine(database_url)
    key = generate_api_key()
    with sessionmaker(bind=engine).begin() as session:
        tenant = TenantRepository(session).create(f"e2e-{os.getpid()}-{time.time_ns()}")
        ApiKeyRepository(session).create(tenant.id, hash_api_key(key), display_prefix(key))
    engine.dispose()
    return key
