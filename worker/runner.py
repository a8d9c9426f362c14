"""Running one job: claim, fit with store-wired callbacks, write results, end it once.

``JobRunner(job_id).run() -> Outcome`` is what the ``vihub.run_job`` task calls. The
``Outcome`` (``succeeded``, ``failed``, ``cancelled``, ``requeued``, ``not-claimed``,
``lease-lost``, ``missing``) lets tests and logs tell what happened.

The steps, and why:

1. **Claim** with one atomic UPDATE (``JobRepository.claim``). A redelivered or duplicate
   message for a job that is final, or running under a live lease, claims nothing and
   the task just returns (Celery then acks it). A job out of attempts is failed here
   with ``too-many-attempts``.
2. **Load** the spec and the dataset (canonical NPZ; a blob-store dataset through this
   host's cache, ``worker.dataset_cache``, handed to the sandbox as a path it
   memory-maps). If a ``checkpoint`` artifact exists
   (an earlier attempt died), it is passed to the engine as ``resume_from`` and loss
   points after its step are deleted; without a checkpoint the curve is cleared. Either
   way the stored curve is rebuilt from one consistent trajectory.
3. **Fit** in a fresh sandboxed process (``worker.job_sandbox`` via ``inference.sandbox``,
   under ``settings.sandbox`` limits); this process never runs user code, it relays what
   the sandbox reports. ``on_progress`` buffers the engine's ``new_losses`` and writes
   progress + loss points at most every ``worker.progress_every_s`` (and at the last
   step); ``should_cancel`` re-reads ``cancel_requested`` at that cadence, and also stops
   the run when the lease was lost or ``quotas.max_run_seconds`` is exceeded;
   ``on_checkpoint`` flushes pending loss points and upserts the checkpoint artifact in
   one transaction, so a checkpoint never refers to points the store does not have.
   A heartbeat thread renews the lease every ``worker.heartbeat_seconds``, independent
   of the engine's cadence. The checkpoint cadence is the operator's
   (``worker.checkpoint_every_s`` replaces the spec's ``checkpoint_every_s``).
4. **Finish** in exactly one final state: on success the artifacts, the full loss curve
   (if anything is missing) and ``succeeded`` are written in ONE transaction; an
   ``InferenceError`` becomes ``failed`` with a problem+json error from its ``kind``;
   ``FitCancelled`` becomes ``cancelled``; anything else is logged with its traceback
   and either released to ``queued`` for another attempt (attempts left) or ``failed``
   with ``internal-error``; a breached OS limit is ``failed`` with ``resource-limit``,
   never retried. Every final write is guarded by this worker's lease (a worker whose
   job was reclaimed writes nothing) and retried on a transient database error.
   The netCDF file (``worker.job_sandbox.LATE_KINDS``) is built by the sandbox after it
   sent the result and stored after ``succeeded`` is committed, by a thread that then
   closes the sandbox, so its ~70 ms delay neither the job's end nor the task's return
   (the worker's next job); until it lands (or if it is lost) the API encodes the same
   file from the JSON result.

Loss points use ``ON CONFLICT DO UPDATE``: after a resume the engine restores its loss
history up to the checkpoint step and reports only later steps, which overwrite any
points the dead attempt wrote after its checkpoint with the values of the run that
produced the result; the curve is continuous and has one point per step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DataError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from common import problems
from common.arrays import decode_arrays
from common.settings import Settings, get_settings
from inference.sandbox import ResourceLimits, Sandbox, SandboxError, add_preload, resource_limit_error
from store.blobs import BlobNotFound, blob_store
from store.db import session_factory as default_session_factory
from store.job_states import InvalidTransition, JobState
from store.models import ArtifactKind, utcnow
from store.repositories import (
    ArtifactRepository,
    DatasetRepository,
    JobRepository,
    LossPointRepository,
)
from store.repositories.jobs import LeaseLost
from worker.dataset_cache import local_dataset
from worker.hooks import on_job_finished
from worker.job_sandbox import FIT_CANCELLED_KIND, LATE_KINDS, finite
from worker.warm_start import WarmStartFailed, load_warm_start

log = logging.getLogger("vihub.worker")

# The fit's entry point is imported once by the forkserver, not by every job's child.
add_preload("worker.job_sandbox")


class Outcome(str, enum.Enum):
    """What ``JobRunner.run`` did with one delivery of a job."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REQUEUED = "requeued"  # released to ``queued`` for another attempt
    NOT_CLAIMED = "not-claimed"  # a duplicate delivery: nothing to do
    LEASE_LOST = "lease-lost"  # reclaimed meanwhile: this worker wrote no final state
    MISSING = "missing"  # no such job

    def __str__(self) -> str:
        return self.value


def make_worker_id() -> str:
    """``host:pid:nonce`` — unique per attempt; the pid lets operators (and the SIGKILL
    test) find the process that holds a job."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _Heartbeat(threading.Thread):
    """Renews the lease; sets ``lost`` when the job is no longer ours."""

    def __init__(self, factory: sessionmaker[Session], job_id: str, worker_id: str,
                 lease_seconds: float, interval: float) -> None:
        super().__init__(name=f"vihub-heartbeat-{job_id[:8]}", daemon=True)
        self.factory, self.job_id, self.worker_id = factory, job_id, worker_id
        self.lease_seconds, self.interval = lease_seconds, interval
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                with self.factory.begin() as session:
                    held = JobRepository(session).heartbeat(self.job_id, self.worker_id, self.lease_seconds)
            except Exception:
                # A database blip: try again next tick; if it lasts, the lease expires and
                # the sweeper hands the job to another worker, which is the right outcome.
                log.warning("heartbeat for job %s failed", self.job_id, exc_info=True)
                continue
            if not held:
                if self.stopped.is_set():
                    return  # our own final write ended the lease while this tick ran
                log.warning("job %s: lease lost (reclaimed or finished elsewhere)", self.job_id)
                self.lost.set()
                return

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)


class _StoreCallbacks:
    """What the sandboxed fit reports (progress, "should I stop?", checkpoints), written
    to the store at the worker's cadence."""

    def __init__(self, runner: JobRunner, heartbeat: _Heartbeat, attempt: int) -> None:
        self.runner = runner
        self.heartbeat = heartbeat
        self.attempt = attempt
        w = runner.settings.worker
        self.write_every_s = w.progress_every_s
        self.max_run_s = runner.settings.quotas.max_run_seconds
        self.pending: list[tuple[int, float]] = []
        self.last_progress: dict[str, Any] | None = None
        self.last_write = 0.0  # monotonic; 0 -> the first report is written at once
        self.last_cancel_check = 0.0
        self.cancel_requested = False
        self.timed_out = False
        self.started = time.monotonic()

    # -- engine callbacks ---------------------------------------------------------------

    # The engine turns any exception escaping a callback into FitFailed (a user-facing
    # failure), so a database blip must not escape: it is logged, pending loss points stay
    # buffered for the next write, and if the outage lasts the lease expires and the job
    # is handed over (this worker's final write is then refused).

    def on_progress(self, report: dict[str, Any]) -> None:
        """A progress report relayed by the sandbox (``worker.job_sandbox``), re-checked:
        the supervisor trusts nothing the child sends."""
        for item in report.get("new_losses") or []:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                self.pending.append((int(item[0]), finite(item[1])))
        step, steps = int(report.get("step") or 0), int(report.get("steps") or 0)
        self.last_progress = {"step": step, "steps": steps,
                              **{k: finite(report.get(k)) for k in ("loss", "smoothed_loss", "steps_per_s", "eta_s")}}
        now = time.monotonic()
        if now - self.last_write >= self.write_every_s or step >= steps:
            try:
                self.flush()
            except SQLAlchemyError:
                log.warning("job %s: progress write failed; retrying at the next report",
                            self.runner.job_id, exc_info=True)

    def should_cancel(self) -> bool:
        if self.heartbeat.lost.is_set():
            return True
        now = time.monotonic()
        if self.max_run_s and now - self.started > self.max_run_s:
            self.timed_out = True
            return True
        if now - self.last_cancel_check >= self.write_every_s:
            self.last_cancel_check = now
            try:
                with self.runner.factory.begin() as session:
                    self.cancel_requested = JobRepository(session).is_cancel_requested(self.runner.job_id)
            except SQLAlchemyError:
                log.warning("job %s: cancel check failed", self.runner.job_id, exc_info=True)
        return self.cancel_requested

    def on_checkpoint(self, blob: bytes, step: int) -> None:
        r = self.runner
        written = len(self.pending)
        try:
            with r.factory.begin() as session:
                # The points up to `step` and the checkpoint commit together.
                if not self._write_progress(session):
                    return
                artifacts = r.artifacts(session)
                artifacts.put(
                    r.job_id, ArtifactKind.CHECKPOINT, blob,
                    meta={"step": int(step), "attempt": self.attempt, "worker_id": r.worker_id},
                )
        except (SQLAlchemyError, OSError):
            log.warning("job %s: checkpoint at step %d not stored", r.job_id, step, exc_info=True)
            return
        r.drop_blobs(artifacts.replaced_blob_keys)
        self._committed(written)
        log.info("job %s: checkpoint at step %d (%d bytes)", r.job_id, step, len(blob))

    # -- writes -------------------------------------------------------------------------

    def flush(self) -> None:
        written = len(self.pending)
        with self.runner.factory.begin() as session:
            held = self._write_progress(session)
        if held:
            self._committed(written)

    def _write_progress(self, session: Session) -> bool:
        """Progress + pending loss points + lease, in the caller's transaction."""
        r = self.runner
        if self.last_progress is None and not self.pending:
            held = JobRepository(session).heartbeat(r.job_id, r.worker_id, r.settings.worker.lease_seconds)
        else:
            held = JobRepository(session).record_progress(
                r.job_id, self.last_progress or {}, self.pending,
                worker_id=r.worker_id, lease_seconds=r.settings.worker.lease_seconds,
            )
        if not held:
            self.heartbeat.lost.set()
            return False
        return True

    def _committed(self, written: int) -> None:
        """The first ``written`` pending points are in the store now."""
        del self.pending[:written]
        self.last_write = time.monotonic()


@dataclass
class _Attempt:
    """One claim of the job by this worker: what the fit, the relay and the outcome share."""

    number: int
    max_attempts: int
    queue: str
    heartbeat: _Heartbeat
    callbacks: _StoreCallbacks
    limits: ResourceLimits | None = None  # the sandbox's, once it is started
    watch: _SandboxWatch | None = None

    @property
    def lease_lost(self) -> bool:
        return self.heartbeat.lost.is_set()

    @property
    def retries_left(self) -> bool:
        return self.number < self.max_attempts


# How a fit can end without a result, as types: the sandbox's final message and the
# supervisor's own observations are turned into these where they arrive (the wire
# carries words), and ``JobRunner._ended`` picks one final state per type.


class _FitEnded(Exception):
    """The fit ended without a result."""


class _ChildFailed(_FitEnded):
    """An ``InferenceError`` in the child: the user's model or data, never retried."""

    def __init__(self, kind: str, message: str, error: dict[str, Any]) -> None:
        super().__init__(message)
        self.kind, self.message, self.error = kind, message, error


class _Cancelled(_FitEnded):
    """The run stopped because ``should_cancel`` said so (a cancel, the run-time quota or
    a lost lease; ``_ended`` tells them apart)."""


class _RunTimeLimit(_FitEnded):
    """The child was killed for running past ``quotas.max_run_seconds`` without stopping."""


class _LeaseLost(_FitEnded):
    """The job was reclaimed while its child ran."""


class _OverLimit(_FitEnded):
    """An OS limit of the sandbox was breached (seen by the child or by the supervisor)."""

    def __init__(self, breach: SandboxError) -> None:
        super().__init__(breach.message)
        self.breach = breach


class _ChildCrashed(_FitEnded):
    """The child failed outside the library's error hierarchy: ours, retried."""


def _child_ended(header: dict[str, Any]) -> _FitEnded:
    """The sandbox's final message other than a result, as a ``_FitEnded``."""
    op = header.get("op")
    if op == "failed":
        kind = str(header.get("kind") or "inference-error")
        if kind == FIT_CANCELLED_KIND:
            return _Cancelled()
        error = header.get("error") if isinstance(header.get("error"), dict) else {}
        return _ChildFailed(kind, str(header.get("message") or kind), error)
    if op == "resource-limit":
        return _OverLimit(SandboxError("resource-limit", "", limit=str(header.get("limit") or "memory")))
    return _ChildCrashed(str(header.get("message") or "the sandbox crashed"))


def _sandbox_ended(exc: SandboxError, attempt: _Attempt) -> BaseException:
    """What a child that ended without a final answer means (killed, crashed, a limit)."""
    stopped_for = attempt.watch.stopped_for if attempt.watch is not None else None
    if attempt.lease_lost:
        return _LeaseLost()
    if stopped_for == "cancel":
        return _Cancelled()
    if stopped_for == "time-limit":
        return _RunTimeLimit()
    if exc.reason == "resource-limit":
        return _OverLimit(exc)
    return exc


class JobRunner:
    def __init__(
        self,
        job_id: str,
        *,
        settings: Settings | None = None,
        worker_id: str | None = None,
        factory: sessionmaker[Session] | None = None,
        publish: Callable[[str, str], None] | None = None,
    ) -> None:
        self.job_id = str(job_id)
        self.settings = settings or get_settings()
        self.worker_id = worker_id or make_worker_id()
        self.factory = factory or default_session_factory(self.settings)
        self._publish = publish
        self._heartbeat: _Heartbeat | None = None
        # Stores the artifacts a sandbox sends after its result (``_fit_and_finish``).
        self.late_artifacts: threading.Thread | None = None

    # -- the run ------------------------------------------------------------------------

    def run(self) -> Outcome:
        w = self.settings.worker
        with self.factory.begin() as session:
            job = JobRepository(session).claim(self.job_id, self.worker_id, w.lease_seconds)
            if job is not None:
                spec_data = dict(job.spec)
                dataset_id, number, max_attempts, queue = job.dataset_id, job.attempts, job.max_attempts, job.queue
        if job is None:
            return self._not_claimed()
        log.info("job %s: claimed by %s (attempt %d/%d)", self.job_id, self.worker_id, number, max_attempts)

        heartbeat = _Heartbeat(self.factory, self.job_id, self.worker_id, w.lease_seconds, w.heartbeat_seconds)
        heartbeat.start()
        self._heartbeat = heartbeat
        attempt = _Attempt(number, max_attempts, queue, heartbeat, _StoreCallbacks(self, heartbeat, number))
        try:
            try:
                spec, data, resume_from = self._prepare(spec_data, dataset_id)
            except _PrepareFailed as failure:
                return self._finish(JobState.FAILED, failure.problem)
            return self._fit_and_finish(spec, data, resume_from, attempt)
        finally:
            heartbeat.stop()

    def _prepare(self, spec_data: dict[str, Any], dataset_id: str | None) -> tuple[Any, dict[str, Any], bytes | None]:
        from pydantic import ValidationError

        from inference import JobSpec

        inference_part = dict(spec_data.get("inference") or {})
        # The checkpoint cadence is an operational setting: the worker's, not the user's.
        inference_part["checkpoint_every_s"] = self.settings.worker.checkpoint_every_s
        spec_data = {**spec_data, "inference": inference_part}
        try:
            spec = JobSpec.model_validate(spec_data)
        except ValidationError as exc:
            raise _PrepareFailed(problems.problem(
                "spec-error", "Invalid job spec", str(exc), errors=json.loads(exc.json(include_url=False)),
            )) from exc

        location = None
        with self.factory.begin() as session:
            data: dict[str, Any] | Path = {}
            if dataset_id is not None:
                repo = DatasetRepository(session)
                location = repo.get_location(dataset_id)
                content = repo.get_content(dataset_id) if location is not None and not location.blob_key else None
                if location is None or (not location.blob_key and content is None):
                    raise _PrepareFailed(_data_missing(dataset_id))
                if content is not None:
                    data = decode_arrays(content)
            try:
                checkpoint = self.artifacts(session).get_with_content(self.job_id, ArtifactKind.CHECKPOINT)
            except BlobNotFound:  # only a shortcut: start over rather than fail every attempt
                log.warning("job %s: its checkpoint's blob is missing; starting from step 0", self.job_id)
                checkpoint = None
            losses = LossPointRepository(session)
            if checkpoint is not None:
                artifact, resume_from = checkpoint
                step = int((artifact.meta or {}).get("step", 0))
                losses.delete_after(self.job_id, step)
                log.info("job %s: resuming from the checkpoint at step %d", self.job_id, step)
            else:
                resume_from = None
                losses.delete_after(self.job_id, -1)
            self.init_params = None
            if spec.inference.init_from is not None:
                try:
                    self.init_params, source_checkpoint = load_warm_start(
                        session, self.job_id, spec.inference.init_from.model_dump(), checkpoint is not None)
                except WarmStartFailed as failure:
                    raise _PrepareFailed(failure.problem) from failure
                resume_from = resume_from or source_checkpoint
        if location is not None and location.blob_key:
            # Outside any transaction: a cold fetch of a large dataset takes a while.
            try:
                data = local_dataset(self.settings, location.sha256, location.blob_key)
            except BlobNotFound as exc:
                raise _PrepareFailed(_data_missing(dataset_id)) from exc
        return spec, data, resume_from

    def _resource_limits(self, spec: Any, queue: str) -> ResourceLimits:
        fields = self.settings.sandbox.job_limits_for(self.settings.quotas.max_run_seconds)
        device = spec.inference.device
        if device == "cuda" or (device == "auto" and queue == "gpu"):
            # The CUDA runtime reserves huge virtual ranges: an address-space cap breaks it.
            fields["memory_bytes"] = None
        return ResourceLimits(**fields)

    def _fit_and_finish(self, spec: Any, data: dict[str, Any], resume_from: bytes | None,
                        attempt: _Attempt) -> Outcome:
        """Fit in a fresh sandboxed process (this process only relays to the store), then
        end the job in the one state the way the fit ended calls for. Artifacts the child
        sends after its result (``worker.job_sandbox.LATE_KINDS``) are stored after the
        job's success is committed, by a thread that then closes the sandbox
        (``late_artifacts``): neither the job's end nor the worker's next job waits for them."""
        with contextlib.ExitStack() as open_sandbox:
            try:
                header, blobs, late = self._fit_in_sandbox(spec, data, resume_from, attempt, open_sandbox)
            except Exception as exc:  # noqa: BLE001 - every way of ending has its state in _ended
                return self._ended(exc, attempt)
            # Only known kinds, with our own content types: the sandbox names blobs, nothing more.
            artifacts = {kind: (blobs[kind], ArtifactKind.CONTENT_TYPES[kind])
                         for kind in blobs if kind in ArtifactKind.CONTENT_TYPES and kind != ArtifactKind.CHECKPOINT}
            if ArtifactKind.RESULT_JSON not in artifacts:
                return self._internal_error(RuntimeError("the sandbox sent no result"), attempt)
            outcome = self._succeed([finite(v) for v in header.get("loss") or []], artifacts, attempt.callbacks)
            if outcome is Outcome.SUCCEEDED and late is not None:
                sandbox = open_sandbox.pop_all()  # closed by the thread, once it is done
                self.late_artifacts = threading.Thread(
                    target=self._store_late_artifacts, args=(late, sandbox),
                    name=f"vihub-late-artifacts-{self.job_id[:8]}", daemon=True)
                self.late_artifacts.start()
            return outcome

    def _fit_in_sandbox(self, spec: Any, data: dict[str, Any], resume_from: bytes | None, attempt: _Attempt,
                        open_sandbox: contextlib.ExitStack,
                        ) -> tuple[dict[str, Any], dict[str, bytes], Iterator[Any] | None]:
        """The sandbox's ``succeeded`` message, and the rest of its messages when it
        announced late artifacts (the sandbox then stays open in ``open_sandbox``); any
        other end is raised as a ``_FitEnded`` (or the SandboxError / store error itself)."""
        attempt.limits = self._resource_limits(spec, attempt.queue)
        payload = {
            "spec": spec.model_dump(mode="json"),
            # A blob-store dataset travels as a path the sandbox memory-maps.
            "data": data if not isinstance(data, Path) else None,
            "data_path": str(data) if isinstance(data, Path) else None,
            "resume_from": resume_from,
            "init_params": getattr(self, "init_params", None),
            "limits": dataclasses.asdict(self.settings.limits),
        }
        try:
            box = open_sandbox.enter_context(Sandbox(
                "worker.job_sandbox:run_fit", payload, attempt.limits,
                max_message_bytes=self.settings.sandbox.max_result_mb * 1024 * 1024))
            attempt.watch = _SandboxWatch(box, attempt.callbacks, attempt.heartbeat)
            messages = box.messages(poll_s=1.0, on_idle=attempt.watch.on_idle)
            for header, blobs in messages:
                if header.get("op") == "succeeded":
                    late = messages if header.get("late") and not header.get("final") else None
                    return header, blobs, late
                if not header.get("final"):
                    self._relay(box, header, blobs, attempt)
                else:
                    raise _child_ended(header)
        except SandboxError as exc:
            raise _sandbox_ended(exc, attempt) from exc
        raise _ChildCrashed("the sandbox ended without a final message")

    def _store_late_artifacts(self, messages: Iterator[Any], sandbox: contextlib.ExitStack) -> None:
        """The artifacts a sandbox sends after its result, added to the succeeded job;
        then the sandbox is closed. Losing them loses nothing the API cannot rebuild (it
        encodes a missing netCDF from the JSON result), so any failure is only logged."""
        with sandbox:
            try:
                self._receive_late_artifacts(messages)
            except Exception:  # a thread's last word
                log.warning("job %s: could not store the artifacts sent after the result", self.job_id,
                            exc_info=True)

    def _receive_late_artifacts(self, messages: Iterator[Any]) -> None:
        header: dict[str, Any] = {}
        blobs: dict[str, bytes] = {}
        try:
            for header, blobs in messages:
                if header.get("final"):
                    break
        except SandboxError as exc:
            log.warning("job %s: artifacts after the result were lost: %s", self.job_id, exc.message)
            return
        if header.get("op") != "late-artifacts":
            log.warning("job %s: artifacts after the result were lost (%s)", self.job_id, header.get("op"))
            return
        artifacts = {kind: blobs[kind] for kind in LATE_KINDS if kind in blobs}
        # A store error propagates to _store_late_artifacts, which logs it.
        with self.factory.begin() as session:
            job = JobRepository(session).get(self.job_id)
            if job is None or job.deleted_at is not None or job.state != JobState.SUCCEEDED.value:
                return
            repo = self.artifacts(session)
            for kind, content in artifacts.items():
                repo.put(self.job_id, kind, content, ArtifactKind.CONTENT_TYPES[kind])
        self.drop_blobs(repo.replaced_blob_keys)

    def _relay(self, box: Sandbox, header: dict[str, Any], blobs: dict[str, bytes], attempt: _Attempt) -> None:
        callbacks = attempt.callbacks
        op = header.get("op")
        if op == "progress":
            callbacks.on_progress(header.get("progress") or {})
        elif op == "should-cancel":
            if attempt.watch is not None:
                attempt.watch.asked()
            box.reply({"cancel": callbacks.should_cancel()})
        elif op == "checkpoint":
            callbacks.on_checkpoint(blobs.get("checkpoint", b""), int(header.get("step") or 0))
        elif op == "drop-checkpoint":
            log.warning("job %s: checkpoint unusable; starting over", self.job_id)
            self._drop_checkpoint()
            callbacks.pending.clear()
            box.reply({"ok": True})
        else:
            log.warning("job %s: unknown message %r from the sandbox", self.job_id, op)

    def _ended(self, exc: BaseException, attempt: _Attempt) -> Outcome:
        """The final state for a fit that ended without a result, by the way it ended."""
        from celery.exceptions import SoftTimeLimitExceeded

        callbacks = attempt.callbacks
        if isinstance(exc, (SoftTimeLimitExceeded, _RunTimeLimit)):
            return self._finish(JobState.FAILED, self._time_limit_problem())
        if isinstance(exc, _LeaseLost):
            return Outcome.LEASE_LOST
        if isinstance(exc, _Cancelled):
            if attempt.lease_lost:
                return Outcome.LEASE_LOST
            if callbacks.timed_out:
                return self._finish(JobState.FAILED, self._time_limit_problem())
            self._flush_quietly(callbacks)
            return self._finish(JobState.CANCELLED, None)
        if isinstance(exc, _OverLimit):
            log.warning("job %s: %s", self.job_id, exc.breach.message or f"{exc.breach.limit} limit")
            self._flush_quietly(callbacks)
            assert attempt.limits is not None  # set before the sandbox starts
            problem = _resource_limit_problem(resource_limit_error(exc.breach, attempt.limits))
            return self._finish(JobState.FAILED, problem)
        if isinstance(exc, _ChildFailed):
            log.info("job %s: %s: %s", self.job_id, exc.kind, exc.message)
            self._flush_quietly(callbacks)
            return self._finish(JobState.FAILED, problems.from_inference_error(exc.kind, exc.error))
        # A crash of ours (not the user's model), a store failure under the relay, or no
        # process could be started: retried while attempts are left.
        return self._internal_error(exc, attempt)

    def _internal_error(self, exc: BaseException, attempt: _Attempt) -> Outcome:
        log.error("job %s: internal error in attempt %d/%d", self.job_id, attempt.number, attempt.max_attempts,
                  exc_info=exc)
        if attempt.lease_lost:
            return Outcome.LEASE_LOST
        if attempt.retries_left:
            return self._release(attempt.queue)
        return self._finish(JobState.FAILED, problems.problem(
            problems.INTERNAL_ERROR, "Internal error",
            f"the worker failed {attempt.number} times; the last error was {type(exc).__name__}", status=500,
        ))

    # -- outcomes -----------------------------------------------------------------------

    def _succeed(self, loss: list[float | None], artifacts: dict[str, tuple[bytes, str]],
                 callbacks: _StoreCallbacks) -> Outcome:
        def write(session: Session) -> bool:
            if not callbacks._write_progress(session):
                return False
            losses = LossPointRepository(session)
            if losses.count(self.job_id) != len(loss):
                # Belt and braces: the engine's curve is the truth for the final state.
                losses.delete_after(self.job_id, len(loss))
                losses.upsert_many(self.job_id, [(i + 1, v) for i, v in enumerate(loss)])
            repo = self.artifacts(session)
            replaced.append(repo.replaced_blob_keys)
            for kind, (content, content_type) in artifacts.items():
                repo.put(self.job_id, kind, content, content_type)
            repo.delete(self.job_id, ArtifactKind.CHECKPOINT)
            JobRepository(session).finish(self.job_id, JobState.SUCCEEDED.value, worker_id=self.worker_id)
            return True

        replaced: list[list[str]] = []
        outcome = self._final_write(JobState.SUCCEEDED, write)
        if outcome is Outcome.SUCCEEDED and replaced:
            self.drop_blobs(replaced[-1])
        return outcome

    def _finish(self, state: JobState, error: dict[str, Any] | None) -> Outcome:
        def write(session: Session) -> bool:
            JobRepository(session).finish(self.job_id, state.value, error=error, worker_id=self.worker_id)
            return True

        return self._final_write(state, write)

    def _final_write(self, state: JobState, write: Callable[[Session], bool]) -> Outcome:
        """Commit a final state, retrying a transient database error.

        A finished fit is minutes of work: a database blip at the last commit must not
        throw it away (and rerun it). The heartbeat keeps the lease alive meanwhile; it is
        stopped once the state is committed, so it cannot report a lease "lost" to our
        own final write.
        """
        delays = self.settings.worker.final_write_retry_s
        for attempt in range(len(delays) + 1):
            try:
                with self.factory.begin() as session:
                    if not write(session):
                        return Outcome.LEASE_LOST
                break
            except (LeaseLost, InvalidTransition) as exc:
                log.warning("job %s: not finished by this worker: %s", self.job_id, exc)
                return Outcome.LEASE_LOST
            except DataError as exc:
                # The error text could not be stored (it is escaped, so this is a backstop):
                # end the job with a plain problem rather than leave it running.
                if state == JobState.SUCCEEDED or getattr(write, "plain", False):
                    raise
                log.warning("job %s: the final error could not be stored (%s)", self.job_id, exc)
                write = self._plain_failure_write(state)
            except (OperationalError, InterfaceError) as exc:
                if attempt == len(delays):
                    raise
                log.warning("job %s: writing the final state failed (%s); retrying in %.1f s",
                            self.job_id, type(exc).__name__, delays[attempt])
                time.sleep(delays[attempt])
        if self._heartbeat is not None:
            self._heartbeat.stop()
        on_job_finished(self.job_id, state.value, self.settings)
        log.info("job %s: %s", self.job_id, state.value)
        return Outcome(state.value)

    def _plain_failure_write(self, state: JobState) -> Callable[[Session], bool]:
        error = problems.problem(problems.INTERNAL_ERROR, "Error not storable",
                                 "the job ended but its error message could not be stored")

        def write(session: Session) -> bool:
            JobRepository(session).finish(self.job_id, state.value, error=error, worker_id=self.worker_id)
            return True

        write.plain = True  # type: ignore[attr-defined]
        return write

    def _release(self, queue: str) -> Outcome:
        with self.factory.begin() as session:
            released = JobRepository(session).release(self.job_id, self.worker_id)
        if not released:
            return Outcome.LEASE_LOST
        try:
            self.publish(self.job_id, queue)
            with self.factory.begin() as session:
                JobRepository(session).mark_published(self.job_id)
        except Exception:
            log.warning("job %s: republish failed; the sweeper will retry", self.job_id, exc_info=True)
        return Outcome.REQUEUED

    def _not_claimed(self) -> Outcome:
        """The claim failed: tell apart a harmless duplicate from a job out of attempts."""
        now = utcnow()
        with self.factory.begin() as session:
            repo = JobRepository(session)
            job = repo.get(self.job_id)
            if job is None:
                log.warning("job %s: no such job", self.job_id)
                return Outcome.MISSING
            exhausted = job.attempts >= job.max_attempts
            expired = job.state == JobState.RUNNING.value and job.lease_expires_at is not None \
                and job.lease_expires_at < now
            final_state: str | None = None
            if job.state == JobState.QUEUED.value and exhausted and job.deleted_at is None:
                if repo.fail_queued(self.job_id, self._too_many_attempts(job.attempts)):
                    final_state = JobState.FAILED.value
            elif expired and job.cancel_requested:
                if repo.finish_expired(self.job_id, JobState.CANCELLED.value, None, now=now):
                    final_state = JobState.CANCELLED.value
            elif expired and exhausted and repo.finish_expired(
                self.job_id, JobState.FAILED.value, self._too_many_attempts(job.attempts), now=now
            ):
                final_state = JobState.FAILED.value
            state = job.state
        if final_state is not None:
            on_job_finished(self.job_id, final_state, self.settings)
            return Outcome(final_state)
        log.info("job %s: not claimed (state %s); duplicate delivery acknowledged", self.job_id, state)
        return Outcome.NOT_CLAIMED

    # -- helpers ------------------------------------------------------------------------

    def publish(self, job_id: str, queue: str) -> None:
        if self._publish is not None:
            self._publish(job_id, queue)
            return
        from common.broker import publish_job

        publish_job(job_id, queue, self.settings)

    def _drop_checkpoint(self) -> None:
        with self.factory.begin() as session:
            artifacts = self.artifacts(session)
            artifacts.delete(self.job_id, ArtifactKind.CHECKPOINT)
            LossPointRepository(session).delete_after(self.job_id, -1)
        self.drop_blobs(artifacts.replaced_blob_keys)

    def artifacts(self, session: Session) -> ArtifactRepository:
        """Artifacts of at least ``blobs.inline_max_bytes`` go to the blob store."""
        return ArtifactRepository(session, blobs=blob_store(self.settings),
                                  inline_max_bytes=self.settings.blobs.inline_max_bytes)

    def drop_blobs(self, keys: list[str]) -> None:
        """Delete blobs a committed write no longer names (an orphan is harmless)."""
        blobs = blob_store(self.settings)
        for key in keys:
            try:
                blobs.delete(key)
            except Exception:  # noqa: BLE001 - storage blip: the blob stays orphaned
                log.warning("job %s: could not delete blob %s", self.job_id, key, exc_info=True)

    def _flush_quietly(self, callbacks: _StoreCallbacks) -> None:
        try:
            callbacks.flush()
        except Exception:
            log.warning("job %s: could not write the last progress", self.job_id, exc_info=True)

    def _time_limit_problem(self) -> dict[str, Any]:
        limit = self.settings.quotas.max_run_seconds
        return problems.problem(
            problems.TIME_LIMIT, "Time limit exceeded", f"the run exceeded its time limit ({limit} s)",
            limit_s=limit,
        )

    @staticmethod
    def _too_many_attempts(attempts: int) -> dict[str, Any]:
        return problems.problem(
            problems.TOO_MANY_ATTEMPTS, "Too many attempts",
            f"the job was started {attempts} times without finishing (worker crashes or lost leases)",
            attempts=attempts,
        )


def _data_missing(dataset_id: str | None) -> dict[str, Any]:
    return problems.problem(problems.DATA_MISSING, "Dataset missing", f"dataset {dataset_id} no longer exists")


class _PrepareFailed(Exception):
    def __init__(self, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem["title"])
        self.problem = problem


def _resource_limit_problem(error: dict[str, Any]) -> dict[str, Any]:
    """The job's problem for a breached OS limit: which limit, and its configured value."""
    extra = {k: v for k, v in error.items() if k not in ("kind", "message")}
    return problems.problem(problems.RESOURCE_LIMIT, "Resource limit exceeded", error.get("message"), **extra)


class _SandboxWatch:
    """Stops a sandbox that no longer asks whether to stop.

    The engine asks ``should-cancel`` at its progress cadence; a model stuck in one long
    native call does not ask. When a cancel, a lost lease or the run-time quota is seen
    here and the child has not asked for ``grace_s``, the child is killed.
    """

    def __init__(self, box: Sandbox, callbacks: _StoreCallbacks, heartbeat: _Heartbeat,
                 grace_s: float = 30.0) -> None:
        self.box, self.callbacks, self.heartbeat, self.grace_s = box, callbacks, heartbeat, grace_s
        self.last_asked = time.monotonic()
        self.stop_seen_at: float | None = None
        self.stopped_for: str | None = None

    def asked(self) -> None:
        self.last_asked = time.monotonic()

    def on_idle(self) -> None:
        try:
            stop = self.callbacks.should_cancel()
        except Exception:  # noqa: BLE001 - a store blip; the heartbeat decides about the lease
            return
        if not stop:
            return
        now = time.monotonic()
        self.stop_seen_at = self.stop_seen_at or now
        if now - max(self.stop_seen_at, self.last_asked) < self.grace_s:
            return
        if self.heartbeat.lost.is_set():
            self.stopped_for = "lease-lost"
        elif self.callbacks.timed_out:
            self.stopped_for = "time-limit"
        else:
            self.stopped_for = "cancel"
        log.warning("job %s: the model did not stop within %.0f s (%s); killing its process",
                    self.callbacks.runner.job_id, self.grace_s, self.stopped_for)
        self.box.kill(self.stopped_for)
