"""Model code that the API must run, kept off the event loop and out of the API process.

Submission-time dry runs (compile the model, bind the data, trace model and guide once
via ``inference.validate``) and posterior-predictive requests run user model code. Each
call runs in a **fresh process** forked from a pre-warmed forkserver
(``inference.sandbox``): a process that has run one request's model never runs another's,
so nothing a model leaves behind in Pyro's process-global state (handler stack, param
store, RNG) can reach another tenant. The child runs under OS limits (address space, CPU
seconds, a wall-clock SIGKILL from this side) and dies with its parent.

The time limit is enforced twice: inside the child by ``SIGALRM`` (which interrupts the
model language's interpreter and gives a clean "took longer than N s" answer) and here by
the sandbox's wall deadline, which kills a child wedged in native code.

The functions that run in the child return plain data (``{"ok": ..., ...}``) instead of
raising; arrays come back as ``.npy`` blobs and nothing coming back is unpickled.
"""

from __future__ import annotations

import io
import json
import logging
import signal
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from inference.sandbox import (
    Channel,
    add_preload,
    ResourceLimits,
    SandboxError,
    exception_chain,
    is_out_of_memory,
    mentions_out_of_memory,
    resource_limit_error,
    run_in_sandbox,
)
from inference.sandbox import warm_up as warm_up_forkserver
# The one to-JSON / to-numpy helper (api.catalog and api.jobs.predict import jsonable from here).
from inference.results.formats import jsonable, to_numpy  # noqa: F401

log = logging.getLogger("vihub.api.dryrun")

# Margin between the child's own alarm and the parent's SIGKILL deadline: the alarm
# answers first with a clean timeout, the kill is for a child stuck in native code.
_WALL_MARGIN_S = 2.0


class DryRunTimedOut(Exception):
    pass


class DryRunUnavailable(Exception):
    pass


class DryRunTenantBusy(Exception):
    """This tenant already has its share of trial runs in flight."""


class DryRunPool:
    """At most ``max_workers`` concurrent dry runs, each in its own disposable process,
    and at most ``per_tenant`` of them for any one tenant (the rest are refused at once,
    not queued: a queued request would still hold a waiting thread and a slot in line)."""

    def __init__(self, max_workers: int = 1, time_limit_s: float = 20.0, queue_wait_s: float = 30.0,
                 *, per_tenant: int | None = None, memory_bytes: int | None = None,
                 cpu_seconds: float | None = None, max_result_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_workers = max(1, int(max_workers))
        self.per_tenant = max(1, int(per_tenant if per_tenant is not None else self.max_workers))
        self._in_flight: dict[str, int] = {}
        self._tenants_lock = threading.Lock()
        self.time_limit_s = float(time_limit_s)
        # Time a request may wait for a free slot on top of its own run time.
        self.queue_wait_s = float(queue_wait_s)
        self.memory_bytes = memory_bytes
        self.cpu_seconds = cpu_seconds
        self.max_result_bytes = int(max_result_bytes)
        self._slots = threading.BoundedSemaphore(self.max_workers)
        add_preload("api.dryrun")

    @property
    def limits(self) -> ResourceLimits:
        return ResourceLimits(memory_bytes=self.memory_bytes, cpu_seconds=self.cpu_seconds,
                              wall_seconds=self.time_limit_s + _WALL_MARGIN_S)

    def warm_up(self) -> None:
        """Start the forkserver (it imports torch and the engine once) without waiting."""
        threading.Thread(target=_warm_up_quietly, name="vihub-forkserver-warm-up", daemon=True).start()

    def run(self, fn: Any, *args: Any, tenant: str | None = None) -> dict[str, Any]:
        """Run ``fn(*args, time_limit_s)`` in a fresh child; blocks the calling (worker) thread.

        ``tenant`` (its id) counts the call against that tenant's share.
        """
        with self._tenant_share(tenant):
            return self._run(fn, *args)

    @contextmanager
    def _tenant_share(self, tenant: str | None):
        if tenant is None:
            yield
            return
        with self._tenants_lock:
            if self._in_flight.get(tenant, 0) >= self.per_tenant:
                raise DryRunTenantBusy(f"{self.per_tenant} trial run(s) of this tenant are still running")
            self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
        try:
            yield
        finally:
            with self._tenants_lock:
                left = self._in_flight[tenant] - 1
                if left:
                    self._in_flight[tenant] = left
                else:
                    del self._in_flight[tenant]

    def _run(self, fn: Any, *args: Any) -> dict[str, Any]:
        if not self._slots.acquire(timeout=self.queue_wait_s):
            raise DryRunUnavailable("all trial-run processes are busy")
        limits = self.limits
        try:
            header, blobs = run_in_sandbox(
                "api.dryrun:child_call", (f"{fn.__module__}:{fn.__name__}", args, self.time_limit_s),
                limits, max_message_bytes=self.max_result_bytes,
            )
        except SandboxError as exc:
            if exc.reason == "resource-limit":
                if exc.limit == "wall":
                    raise DryRunTimedOut() from exc
                return {"ok": False, "error": resource_limit_error(exc, limits)}
            if exc.reason == "crashed":
                return {"ok": False, "internal": True, "message": exc.message}
            raise DryRunUnavailable(exc.message) from exc
        except OSError as exc:  # could not fork (process or memory limits of the host)
            raise DryRunUnavailable(f"could not start a trial-run process: {exc}") from exc
        finally:
            self._slots.release()
        if header.get("op") == "resource-limit":
            return {"ok": False, "error": resource_limit_error(
                SandboxError("resource-limit", "", limit=str(header.get("limit") or "memory")), limits)}
        if header.get("op") != "outcome" or not isinstance(header.get("outcome"), dict):
            return {"ok": False, "internal": True, "message": str(header.get("message") or "no answer")}
        outcome = _decode_outcome(header["outcome"], blobs)
        error = outcome.get("error")
        if isinstance(error, dict) and error.get("kind") == "resource-limit":
            # The child caught its own allocation failure; name the configured limit.
            outcome["error"] = resource_limit_error(
                SandboxError("resource-limit", "", limit=str(error.get("limit") or "memory")), limits)
        return outcome

    def shutdown(self) -> None:
        """Nothing to stop: each call's process ends with the call, the forkserver with us."""


def _warm_up_quietly() -> None:
    try:
        warm_up_forkserver()
    except Exception:  # pragma: no cover - the first request reports the real error
        log.warning("could not start the trial-run forkserver", exc_info=True)


def _decode_outcome(outcome: dict[str, Any], blobs: Mapping[str, bytes]) -> dict[str, Any]:
    """Arrays sent as ``.npy`` blobs back into the outcome (``allow_pickle=False``)."""
    import numpy as np

    arrays: dict[str, dict[str, Any]] = {}
    for name, blob in blobs.items():
        group, _, key = name.partition("/")
        arrays.setdefault(group, {})[key] = np.load(io.BytesIO(blob), allow_pickle=False)
    for group, values in arrays.items():
        outcome[group] = values
    return outcome


# ---------------------------------------------------------------------------------------
# Child side. Everything below runs in the spawned process.


def child_call(channel: Channel, payload: tuple[str, tuple, float]) -> None:
    """Sandbox entry: run ``module:function(*args, time_limit_s)`` and send its outcome."""
    import importlib

    import numpy as np

    target, args, time_limit_s = payload
    module_name, _, function_name = target.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    outcome = dict(function(*args, time_limit_s))
    blobs: dict[str, bytes] = {}
    for group in ("predictive",):
        arrays = outcome.pop(group, None)
        if arrays is None:
            continue
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(value), allow_pickle=False)
            blobs[f"{group}/{key}"] = buffer.getvalue()
    channel.send({"final": True, "op": "outcome", "outcome": jsonable(outcome)}, blobs)


class _Alarm(BaseException):
    """Raised by SIGALRM. A BaseException, so that no ``except Exception`` in the
    language or the engine turns the timeout into a runtime error at a user line."""


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


def _timed_out(exc: BaseException) -> bool:
    return any(isinstance(e, _Alarm) for e in exception_chain(exc))


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
        if _timed_out(exc):
            # The alarm fired inside user code and was wrapped on its way out.
            return {"ok": False, "timeout": True}
        if is_out_of_memory(exc):
            return {"ok": False, "error": {"kind": "resource-limit", "limit": "memory",
                                           "message": "The run exceeded the memory limit and was stopped."}}
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
        # The optimizer's option names are checked when it is built, which validate() does
        # not do: without this an unknown option passed the submit and failed the job in
        # the worker (and carried any payload into the stored spec meanwhile).
        from inference.engine.optim import build_optimizer

        run = job_spec.inference
        build_optimizer(run.optimizer, clip_grad_norm=run.clip_grad_norm, scheduler=run.scheduler,
                        total_steps=run.steps)
        report = jsonable(inference.validate(job_spec, dict(data)))
        if not report.get("ok", True) and mentions_out_of_memory(json.dumps(report.get("errors"))):
            # The trace ran out of memory inside the validation pass, which reports it as
            # a mismatch; it is the memory limit.
            raise MemoryError("the trial run ran out of memory")
        return {"report": report}

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
        return {"predictive": {k: to_numpy(v) for k, v in arrays.items()}}

    return _run_guarded(body, time_limit_s)
