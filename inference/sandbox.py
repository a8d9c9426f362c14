"""Disposable processes for user code: one process per job or request, under OS limits.

The model language is the friendly first line; the *process* is the security boundary
(ARCHITECTURE §4). Every piece of user code a server runs — a job, a submission dry run,
a predict call — runs in a process that has run no other tenant's code before and runs
none after, and that the kernel bounds:

- **Fresh process per call, cheaply.** Children come from ``multiprocessing``'s
  ``forkserver``: one pre-warmed parent per server process (torch, Pyro and the engine
  imported, no torch computation ever run in it, CUDA never initialised) forks a child
  for each call, so a call pays a fork (a few ms), not a torch import (seconds). The
  forkserver never runs user code itself. Forking from a process that has *run* torch
  ops is not an option: GNU OpenMP's thread pool does not survive fork and a
  multi-threaded child hangs.
- **OS limits in the child** (``ResourceLimits``): address space (``RLIMIT_AS``, counted
  on top of what the pre-warmed engine already maps, because torch alone maps hundreds of
  MB of libraries), CPU seconds (``RLIMIT_CPU``: the kernel sends ``SIGXCPU``, then
  ``SIGKILL``; C-level loops cannot dodge it), no core dumps, and a wall-clock deadline
  the parent enforces with ``SIGKILL``. The child also dies with its parent
  (``PR_SET_PDEATHSIG``), so nothing outlives a killed server.
- **Nothing unpickled from the child.** The parent may pickle its arguments *to* the
  child (it trusts itself), but what comes back is JSON plus raw byte blobs
  (``Channel``): a child that escaped the language still cannot run code in the parent
  (which holds database and broker credentials) by sending it a crafted pickle. Message
  sizes are capped.
- The child keeps no inherited sockets (the forkserver holds none) and drops secret-
  bearing environment variables.

``run_in_sandbox`` is the whole call for request/response use; ``Sandbox`` exposes the
message loop for long jobs that stream progress and ask whether to stop.

This module has no web, database or queue knowledge; ``api`` and ``worker`` wire it to
their settings.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import io
import json
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from multiprocessing import forkserver as mp_forkserver
from multiprocessing import popen_forkserver, reduction, spawn, util
from multiprocessing import process as mp_process
from multiprocessing.context import set_spawning_popen
from typing import Any

log = logging.getLogger("vihub.sandbox")

# Modules the forkserver imports once, so each child starts with the engine loaded. The
# engine imports some heavy modules lazily on first use (torch._dynamo when an optimizer
# is built; arviz, xarray and pandas when a result is written as netCDF): each would be
# imported again by every child, seconds per job, so they are imported here once.
PRELOAD = ("inference.sandbox", "inference.fitting", "inference.results", "inference.language",
           "torch._dynamo", "pyro.infer.autoguide", "arviz", "xarray", "h5netcdf", "pandas", "scipy.stats",
           # Last: one tiny fit with one torch thread, so children start warm.
           "inference.sandbox_warmup")

# Environment variables a child keeps; everything else (database and broker URLs,
# API secrets) is dropped before user code runs.
_ENV_KEEP_PREFIXES = ("PATH", "HOME", "LANG", "LC_", "TZ", "TMPDIR", "PYTHON", "OMP_", "MKL_",
                      "OPENBLAS_", "KMP_", "CUDA_", "NVIDIA_", "TORCH_", "PYRO_", "LD_LIBRARY_PATH")

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ResourceLimits:
    """OS limits of one sandboxed process. ``None`` leaves a limit off.

    ``memory_bytes`` is new address space the child may map on top of the pre-warmed
    engine; ``cpu_seconds`` is CPU time over all threads; ``wall_seconds`` is the
    parent's SIGKILL deadline.
    """

    memory_bytes: int | None = None
    cpu_seconds: float | None = None
    wall_seconds: float | None = None

    def describe(self, limit: str) -> tuple[str, Any]:
        """(human text, configured value) for ``limit`` in memory|cpu|wall."""
        if limit == "memory":
            mb = None if self.memory_bytes is None else self.memory_bytes // (1024 * 1024)
            return f"the memory limit ({mb} MB)", mb
        if limit == "cpu":
            return f"the CPU-time limit ({self.cpu_seconds:g} s)", self.cpu_seconds
        return f"the wall-clock limit ({self.wall_seconds:g} s)", self.wall_seconds


class SandboxError(Exception):
    """The child ended without a final answer: a limit, a crash or a protocol breach."""

    def __init__(self, reason: str, message: str, *, limit: str | None = None,
                 exitcode: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # "resource-limit" | "crashed" | "protocol"
        self.message = message
        self.limit = limit
        self.exitcode = exitcode


# ---------------------------------------------------------------------------------------
# The wire: JSON headers and raw blobs, never pickle.


class Channel:
    """One end of a duplex pipe carrying ``(header: dict, blobs: dict[str, bytes])``.

    A message is a JSON header frame naming its blobs, then one frame per blob.
    ``max_bytes`` caps every frame the reader accepts.
    """

    def __init__(self, conn: Any, max_bytes: int = 1 << 30) -> None:
        self.conn = conn
        self.max_bytes = int(max_bytes)

    def send(self, header: Mapping[str, Any], blobs: Mapping[str, bytes] | None = None) -> None:
        blobs = dict(blobs or {})
        frame = json.dumps({**header, "_blobs": list(blobs)}, allow_nan=False,
                           separators=(",", ":"), default=_json_default).encode()
        self.conn.send_bytes(frame)
        for name in blobs:
            self.conn.send_bytes(bytes(blobs[name]))

    def poll(self, timeout: float | None) -> bool:
        return bool(self.conn.poll(timeout))

    def recv(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        try:
            header = json.loads(self.conn.recv_bytes(self.max_bytes))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SandboxError("protocol", "the sandboxed process sent a malformed message") from exc
        except OSError as exc:  # frame longer than max_bytes
            raise SandboxError("protocol", f"the sandboxed process sent more than {self.max_bytes} bytes "
                                           "in one message") from exc
        if not isinstance(header, dict) or not isinstance(header.get("_blobs", []), list):
            raise SandboxError("protocol", "the sandboxed process sent a malformed message")
        names = header.pop("_blobs", [])
        blobs: dict[str, bytes] = {}
        for name in names:
            try:
                blobs[str(name)] = self.conn.recv_bytes(self.max_bytes)
            except OSError as exc:
                raise SandboxError("protocol", f"a result blob is larger than {self.max_bytes} bytes") from exc
        return header, blobs


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


# ---------------------------------------------------------------------------------------
# Parent side.

class _Popen(popen_forkserver.Popen):
    """The forkserver's Popen, minus the re-import of the parent's ``__main__``.

    multiprocessing normally re-runs the parent's main script (``celery``, ``vihub``,
    ``uvicorn`` console scripts) in every child so that pickled functions defined there
    resolve. Our targets are named ``module:function`` strings, so the child needs none
    of it, and skipping it saves an import of the server's CLI per call. The body is
    CPython's ``popen_forkserver.Popen._launch`` (3.10-3.12) with that one change.
    """

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        if "authkey" in prep_data:
            # Under Celery the current process is billiard's, whose key refuses pickling.
            prep_data["authkey"] = bytes(prep_data["authkey"])
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = mp_forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = mp_forkserver.read_signed(self.sentinel)


class _SandboxProcess(mp_process.BaseProcess):
    _start_method = "forkserver"

    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Under Celery the current process is billiard's, whose key type refuses pickling.
        if "authkey" in self._config:
            self._config["authkey"] = mp_process.AuthenticationString(bytes(self._config["authkey"]))

    def start(self) -> None:
        """``BaseProcess.start`` without its "daemonic processes may not have children"
        check: Celery marks its pool processes daemonic, and a supervisor there must be
        able to start the job's sandbox. The sandbox never outlives it anyway
        (``PR_SET_PDEATHSIG`` on the forkserver's side, ``close()`` on ours)."""
        self._check_closed()
        assert self._popen is None, "cannot start a process twice"
        assert self._parent_pid == os.getpid(), "can only start a process object created by current process"
        mp_process._cleanup()
        self._popen = self._Popen(self)
        self._sentinel = self._popen.sentinel
        del self._target, self._args, self._kwargs
        mp_process._children.add(self)


_preload_lock = threading.Lock()
_preload: list[str] = list(PRELOAD)
_preload_set = False


def add_preload(*modules: str) -> None:
    """Also import ``modules`` in the forkserver (the callers' child-side entry points).

    Only effective before the forkserver first starts; a module missing from the
    preload is simply imported by each child, which costs time, not correctness.
    """
    with _preload_lock:
        for name in modules:
            if name not in _preload:
                # Before the warm-up, which must stay last (it runs the modules above).
                _preload.insert(len(_preload) - 1, name)


def _ensure_preload() -> None:
    """Name the modules the forkserver imports (once, before it first starts)."""
    global _preload_set
    with _preload_lock:
        if not _preload_set:
            mp_forkserver.set_forkserver_preload(list(_preload))
            atexit.register(shutdown)
            _preload_set = True


def warm_up() -> None:
    """Start the forkserver now and wait until it has imported the engine (seconds), so
    that the first request does not pay for it. Servers call this in a background thread."""
    _ensure_preload()
    run_in_sandbox("inference.sandbox:_ping", None, ResourceLimits(wall_seconds=600))


def _ping(channel: Channel, payload: Any) -> None:
    channel.send({"final": True, "op": "pong"})


def shutdown() -> None:
    """Stop this process's forkserver and wait for it; children still running die with it
    (``PR_SET_PDEATHSIG``). A server calls it on the way out so that nothing it started
    outlives it, even for a moment."""
    stop = getattr(getattr(mp_forkserver, "_forkserver", None), "_stop", None)
    if callable(stop):
        try:
            stop()
        except (OSError, ChildProcessError):  # already gone
            pass


class Sandbox:
    """One child running ``target(channel, payload)``; the parent drives the messages.

    ``target`` is a ``"module:function"`` of our own code; ``payload`` is pickled to the
    child. Use as a context manager: leaving it kills a child that is still running.
    """

    def __init__(self, target: str, payload: Any, limits: ResourceLimits, *,
                 max_message_bytes: int = 1 << 30) -> None:
        self.target = target
        self.payload = payload
        self.limits = limits
        self.max_message_bytes = max_message_bytes
        self.process: Any = None
        self.channel: Channel | None = None
        self.killed_for: str | None = None
        self.answered = False
        self.started_at = 0.0

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        _ensure_preload()
        parent_conn, child_conn = multiprocessing.Pipe(duplex=True)
        self.process = _SandboxProcess(
            target=_child_main, args=(child_conn, self.target, self.payload, asdict(self.limits)),
            name="vihub-sandbox", daemon=True,
        )
        self.process.start()  # starts the forkserver first if needed (seconds: torch import)
        # The wall clock counts from the child's birth, not from the forkserver's start.
        self.started_at = time.monotonic()
        child_conn.close()
        self.channel = Channel(parent_conn, self.max_message_bytes)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def remaining(self) -> float | None:
        if self.limits.wall_seconds is None:
            return None
        return self.limits.wall_seconds - (time.monotonic() - self.started_at)

    def messages(self, poll_s: float = 0.5, on_idle: Callable[[], None] | None = None,
                 ) -> Iterator[tuple[dict[str, Any], dict[str, bytes]]]:
        """Yield the child's messages until it exits; raise ``SandboxError`` on a limit or crash.

        ``on_idle`` runs whenever no message arrived for ``poll_s`` (the caller's chance
        to renew a lease or notice a cancel). The iterator ends normally only after a
        message with ``"final": true``.
        """
        assert self.channel is not None
        while True:
            remaining = self.remaining()
            if remaining is not None and remaining <= 0:
                self.kill("wall")
                raise self._limit_error("wall")
            wait = poll_s if remaining is None else max(0.0, min(poll_s, remaining))
            try:
                ready = self.channel.poll(wait)
            except (EOFError, OSError):
                ready = True
            if not ready:
                if on_idle is not None:
                    on_idle()
                continue
            try:
                header, blobs = self.channel.recv()
            except (EOFError, OSError):
                raise self._exit_error() from None
            except SandboxError:
                self.kill("protocol")
                raise
            if header.get("final"):
                self.answered = True
            yield header, blobs
            if header.get("final"):
                return

    def reply(self, header: Mapping[str, Any], blobs: Mapping[str, bytes] | None = None) -> None:
        assert self.channel is not None
        try:
            self.channel.send(header, blobs)
        except (BrokenPipeError, OSError):
            pass  # the child is gone; the message loop reports how it ended

    def kill(self, reason: str = "stopped") -> None:
        if self.process is not None and self.process.exitcode is None:
            self.killed_for = self.killed_for or reason
            try:
                self.process.kill()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        if self.process is None:
            return
        if self.channel is not None:
            self.channel.conn.close()
        if self.answered:
            # After its final message the child is in os._exit(); the forkserver reaps it.
            # Not waiting for that keeps a few ms off every call.
            return
        self.kill()
        self.process.join(timeout=5)

    def _exit_error(self) -> SandboxError:
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is None:
            self.kill("protocol")
            self.process.join(timeout=5)
            code = self.process.exitcode
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGXCPU:
                # RLIMIT_CPU's soft limit; its default action ends the process (nothing in
                # the child installs a handler, so the hard limit's SIGKILL is not reached).
                return self._limit_error("cpu")
            if sig == signal.SIGKILL and self.killed_for == "wall":
                return self._limit_error("wall")
            if sig == signal.SIGKILL and self.killed_for is None and self.limits.memory_bytes is not None:
                # Nobody here sent it: the kernel's OOM killer or a cgroup memory limit.
                return self._limit_error("memory")
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
            return SandboxError("crashed", f"the process running the model was killed by {name}",
                                exitcode=code)
        return SandboxError("crashed", f"the process running the model exited with status {code} "
                                       "without an answer", exitcode=code)

    def _limit_error(self, limit: str) -> SandboxError:
        text, _ = self.limits.describe(limit)
        return SandboxError("resource-limit", f"the run exceeded {text}", limit=limit,
                            exitcode=None if self.process is None else self.process.exitcode)


def run_in_sandbox(target: str, payload: Any, limits: ResourceLimits, *,
                   max_message_bytes: int = 1 << 30) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Run ``target(channel, payload)`` in a fresh child and return its final message."""
    with Sandbox(target, payload, limits, max_message_bytes=max_message_bytes) as box:
        for header, blobs in box.messages():
            if header.get("final"):
                return header, blobs
    raise SandboxError("protocol", "the sandboxed process ended without an answer")  # pragma: no cover


def resource_limit_error(exc: SandboxError, limits: ResourceLimits) -> dict[str, Any]:
    """The ``resource-limit`` problem fields for a breached limit (any other reason: crash)."""
    text, value = limits.describe(exc.limit or "wall")
    units = {"memory": "MB", "cpu": "s", "wall": "s"}[exc.limit or "wall"]
    return {"kind": "resource-limit", "message": f"The run exceeded {text} and was stopped.",
            "limit": exc.limit, "limit_value": value, "unit": units}


# ---------------------------------------------------------------------------------------
# Child side. Everything below runs in the forked child.


def _child_main(conn: Any, target: str, payload: Any, limits: dict[str, Any]) -> None:
    channel = Channel(conn)
    try:
        _die_with_parent()
        _restore_threads()
        _apply_limits(ResourceLimits(**limits))
        _scrub_environment()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        module_name, _, function_name = target.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        function(channel, payload)
    except BaseException as exc:  # noqa: BLE001 - the last word of this process
        try:
            if is_out_of_memory(exc):
                channel.send({"final": True, "op": "resource-limit", "limit": "memory"})
            else:
                import traceback

                channel.send({"final": True, "op": "crashed",
                              "message": "".join(traceback.format_exception(exc))[-4000:]})
        except BaseException:  # noqa: BLE001
            pass
    finally:
        try:
            conn.close()
        finally:
            # Skip interpreter teardown (atexit handlers, torch's and Pyro's finalisers):
            # the process is thrown away.
            os._exit(0)


def _die_with_parent() -> None:
    # The forkserver hands every child the write end of its "alive" pipe (so children
    # could fork through it too) and exits only at EOF on that pipe; a child keeping it
    # would keep the forkserver, and so itself, alive after the server died.
    server = getattr(mp_forkserver, "_forkserver", None)
    alive_fd = getattr(server, "_forkserver_alive_fd", None)
    if alive_fd is not None:
        try:
            os.close(alive_fd)
        except OSError:
            pass
        server._forkserver_alive_fd = None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    # The parent may have died between fork and prctl: then we were re-parented already.
    if os.getppid() == 1:
        os._exit(0)


def _restore_threads() -> None:
    """The forkserver warmed up with one torch thread; a child gets the process default
    back (the engine then applies the job's own ``num_threads``, if any)."""
    import sys

    warmup = sys.modules.get("inference.sandbox_warmup")
    if warmup is not None:
        import torch

        torch.set_num_threads(warmup.THREADS)


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return 0


def _apply_limits(limits: ResourceLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.cpu_seconds is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(used.ru_utime + used.ru_stime + max(1.0, float(limits.cpu_seconds)))
        # SIGXCPU at the soft limit (default action: terminate); SIGKILL shortly after.
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 2))
    if limits.memory_bytes is not None:
        cap = _vm_size_bytes() + int(limits.memory_bytes)
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _scrub_environment() -> None:
    for key in list(os.environ):
        if not key.startswith(_ENV_KEEP_PREFIXES):
            del os.environ[key]


_OOM_MARKERS = ("can't allocate memory", "cannot allocate memory", "out of memory", "std::bad_alloc",
                "failed to allocate")


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts, each once (library errors wrap what they caught)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its chain) is an allocation failure, also when a
    library error only quotes the allocator's message (a validation report, say)."""
    return any(isinstance(e, MemoryError) or mentions_out_of_memory(_error_text(e)) for e in exception_chain(exc))


def mentions_out_of_memory(text: str) -> bool:
    text = text.lower()
    return any(marker in text for marker in _OOM_MARKERS)


def _error_text(exc: BaseException) -> str:
    to_dict = getattr(exc, "to_dict", None)
    try:
        details = json.dumps(to_dict(), default=str) if callable(to_dict) else ""
    except Exception:  # noqa: BLE001 - best effort
        details = ""
    return f"{exc} {details}"
