"""Child processes of the ``vihub`` commands: the Celery worker, supervised.

``vihub up`` and ``vihub worker`` run the Celery worker as a subprocess (``python -m
celery -A worker.celery_app worker ...``) and the sweeper as a thread of their own
process. Keeping the sweeper out of the Celery parent means no thread exists in the
process that forks the pool children.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

from common.settings import Settings

log = logging.getLogger("vihub")


def celery_worker_argv(
    queues: Sequence[str],
    *,
    pool: str = "prefork",
    concurrency: int = 1,
    max_tasks_per_child: int | None = None,
    loglevel: str = "INFO",
    hostname: str | None = None,
) -> list[str]:
    argv = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--queues", ",".join(queues),
        "--pool", pool,
        "--concurrency", str(concurrency),
        "--loglevel", loglevel,
        # No broadcast chatter: vihub uses no remote control and no revokes.
        "--without-mingle", "--without-gossip",
        "--hostname", hostname or f"vihub-{'-'.join(queues)}@%h",
    ]
    if max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(max_tasks_per_child)]
    return argv


def child_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: the parent's, with the resolved store and
    broker URLs pinned so parent and child cannot disagree about them."""
    env = dict(os.environ)
    env["VIHUB_HOME"] = str(settings.home)
    env["VIHUB_DATABASE_URL"] = settings.database.url
    env["VIHUB_BROKER_URL"] = settings.broker.url
    env.update(extra or {})
    return env


class SupervisedProcess:
    """A subprocess restarted if it dies on its own; stopped with TERM, then KILL."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], *, restart: bool = True,
                 restart_delay_s: float = 2.0) -> None:
        self.name, self.argv, self.env = name, argv, dict(env)
        self.restart, self.restart_delay_s = restart, restart_delay_s
        self.popen: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        self._spawn()
        if self.restart:
            self._monitor = threading.Thread(target=self._watch, name=f"vihub-watch-{self.name}", daemon=True)
            self._monitor.start()

    def _spawn(self) -> None:
        # Own process group: stop() reaches the pool children too. The child also gets
        # SIGQUIT (Celery's cold shutdown) if this process dies without stopping it, e.g.
        # on SIGKILL: nothing `vihub up` / `vihub worker` started may outlive it. A job
        # cut short that way is redelivered or reclaimed, and resumes from its checkpoint.
        self.popen = subprocess.Popen(self.argv, env=self.env, start_new_session=True,
                                      preexec_fn=_quit_with_parent(os.getpid()))
        log.info("%s started (pid %d)", self.name, self.popen.pid)

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self.popen is not None and self.popen.poll() is not None and not self._stopping.is_set():
                log.error("%s exited with %s; restarting", self.name, self.popen.returncode)
                time.sleep(self.restart_delay_s)
                if not self._stopping.is_set():
                    self.restarts += 1
                    self._spawn()

    def wait(self) -> int:
        while True:
            assert self.popen is not None
            code = self.popen.wait()
            if self._stopping.is_set() or not self.restart:
                return code
            time.sleep(self.restart_delay_s + 0.5)  # the monitor restarts it

    def stop(self, timeout: float = 30.0) -> None:
        """Warm shutdown (TERM: Celery finishes or returns the current message), then KILL."""
        self._stopping.set()
        popen = self.popen
        if popen is None:
            return
        if popen.poll() is None:
            # TERM to the Celery parent only: a warm shutdown lets the pool child finish
            # or give back its job; TERM to the whole group would kill the child mid-job.
            try:
                popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", self.name, timeout)
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        log.info("%s stopped", self.name)


def _quit_with_parent(parent_pid: int):
    """A ``preexec_fn``: ask the kernel for SIGQUIT when the parent dies (Linux)."""

    def arm() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGQUIT, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # not Linux: stop() still applies
            return
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGQUIT)

    return arm
