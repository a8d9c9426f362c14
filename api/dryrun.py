"""Model code that the API must run, kept off the event loop and out of the API process.

Submission-time dry runs (compile the model, bind the data, trace model and guide once
via ``inference.validate``) and posterior-predictive requests run user model code. Pyro's
param store and RNG are process-global and a model can be slow, so this code runs in a
small ``ProcessPoolExecutor`` with the ``spawn`` start method (no inherited locks, no CUDA
state) and a time limit enforced twice: inside the child by ``SIGALRM`` (which interrupts
the Python-level interpreter of the model language) and in the parent by a wait timeout
that replaces the whole pool if a child is wedged in native code.

The functions that run in the child return plain data (``{"ok": ..., ...}``) instead of
raising: library exceptions with keyword-only constructors do not survive pickling.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import signal
import threading
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("vihub.api.dryrun")


class DryRunTimedOut(Exception):
    pass


class DryRunUnavailable(Exception):
    pass


class DryRunPool:
    """A bounded, replaceable pool of spawned processes running ``api.dryrun`` functions."""

    def __init__(self, max_workers: int = 1, time_limit_s: float = 20.0, queue_wait_s: float = 30.0) -> None:
        self.max_workers = max(1, int(max_workers))
        self.time_limit_s = float(time_limit_s)
        # Time a request may wait for a free process on top of its own run time.
        self.queue_wait_s = float(queue_wait_s)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.max_workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_child_init,
                )
            return self._pool

    def warm_up(self) -> None:
        """Start the children and import the engine in them, without waiting."""
        pool = self._executor()
        for _ in range(self.max_workers):
            pool.submit(_child_ping)

    def run(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args, time_limit_s)`` in a child; blocks the calling (worker) thread."""
        try:
            future = self._executor().submit(fn, *args, self.time_limit_s)
        except (BrokenProcessPool, RuntimeError) as exc:
            self._replace()
            raise DryRunUnavailable(str(exc)) from exc
        try:
            return future.result(timeout=self.time_limit_s + self.queue_wait_s)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            if future.running():
                # A child ignored SIGALRM (stuck in native code): kill the pool.
                self._replace()
                raise DryRunTimedOut() from exc
            raise DryRunUnavailable("all trial-run processes are busy") from exc
        except BrokenProcessPool as exc:
            self._replace()
            raise DryRunUnavailable("a trial-run process died") from exc

    def _replace(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to stop a running task; kill its children.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            try:
                process.kill()
            except Exception:  # pragma: no cover - already gone
                pass

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.join(timeout=2)
                if process.is_alive():
                    process.kill()


# ---------------------------------------------------------------------------------------
# Child side. Everything below runs in the spawned process.


def _child_init() -> None:
    # The parent handles Ctrl-C; children must not die half-way through a reply.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        torch.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass


def _child_ping(time_limit_s: float | None = None) -> bool:
    try:
        import inference.language  # noqa: F401
        import inference.spec  # noqa: F401  (warms the import cache)
    except Exception:
        pass
    return True


class _Alarm(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    def _raise(signum: int, frame: Any) -> None:
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _error_dict(exc: BaseException) -> dict[str, Any]:
    to_dict = getattr(exc, "to_dict", None)
    try:
        error = dict(to_dict()) if callable(to_dict) else {}
    except Exception:
        error = {}
    error.setdefault("kind", getattr(exc, "kind", None) or "inference-error")
    error.setdefault("message", getattr(exc, "message", None) or str(exc))
    for attr in ("line", "col"):
        if error.get(attr) is None and getattr(exc, attr, None) is not None:
            error[attr] = getattr(exc, attr)
    return jsonable(error)


def _is_library_error(exc: BaseException) -> bool:
    try:
        from inference.errors import InferenceError
    except ImportError:  # pragma: no cover
        InferenceError = ()  # type: ignore[assignment]
    try:
        from inference.language import ModelLanguageError
    except ImportError:  # pragma: no cover
        ModelLanguageError = ()  # type: ignore[assignment]
    return isinstance(exc, (InferenceError, ModelLanguageError))  # type: ignore[arg-type]


def _run_guarded(body: Any, time_limit_s: float) -> dict[str, Any]:
    try:
        with _time_limit(time_limit_s):
            return {"ok": True, **body()}
    except _Alarm:
        return {"ok": False, "timeout": True}
    except Exception as exc:
        if _is_library_error(exc):
            error = _error_dict(exc)
            part = getattr(exc, "vihub_part", None)
            if part:
                # The error came from compiling this part's source: point at it.
                error.setdefault("pointer", f"/{part}/source")
            return {"ok": False, "error": error}
        # Anything else is a bug on our side or in the engine, not the user's input.
        import traceback

        return {"ok": False, "internal": True, "message": "".join(traceback.format_exception(exc))[-4000:]}


def dry_run(spec: dict[str, Any], data: Mapping[str, Any], limits: Mapping[str, Any] | None,
            time_limit_s: float) -> dict[str, Any]:
    """Compile, bind and trace the job once. Returns ``{"ok", "report" | "error" | "timeout"}``.

    ``limits`` (the operator's ``settings.limits``) are applied by compiling user source
    with them first: ``inference.validate`` compiles with the library defaults.
    """

    def body() -> dict[str, Any]:
        import inference
        from inference.language import Limits, compile_source

        job_spec = inference.JobSpec.model_validate(spec)
        if limits:
            bounds = Limits(**limits)
            for part, default_entry in (("model", "model"), ("guide", "guide")):
                source = (spec.get(part) or {}).get("source")
                if source:
                    try:
                        compile_source(source, (spec.get(part) or {}).get("entry") or default_entry, limits=bounds)
                    except Exception as exc:
                        exc.vihub_part = part  # type: ignore[attr-defined]
                        raise
        report = inference.validate(job_spec, dict(data))
        return {"report": jsonable(report)}

    return _run_guarded(body, time_limit_s)


def predict(result_json: Any, spec: dict[str, Any], new_data: Mapping[str, Any], num_samples: int,
            time_limit_s: float) -> dict[str, Any]:
    """Posterior predictive of a finished job for new data."""

    def body() -> dict[str, Any]:
        import inference
        from inference.results import FitResult

        result = FitResult.from_json(json.loads(result_json) if isinstance(result_json, (str, bytes)) else result_json)
        job_spec = inference.JobSpec.model_validate(spec)
        arrays = inference.predict(result, job_spec, dict(new_data), num_samples)
        return {"predictive": {k: _to_numpy(v) for k, v in arrays.items()}}

    return _run_guarded(body, time_limit_s)


def _to_numpy(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def jsonable(value: Any) -> Any:
    """A JSON-compatible copy of a report / result object (pydantic, dataclass, arrays)."""
    import dataclasses
    import math

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    return str(value)
