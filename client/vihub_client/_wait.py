"""Waiting for a job to end: the decisions shared by ``Job.wait`` and ``AsyncJob.wait``,
and the rich progress bar.

The waiter prefers the server-sent event stream (``GET /v1/jobs/{id}/events``) and
reconnects with ``Last-Event-ID`` when the server closes it or the connection drops; after
repeated failures, or when the server does not offer the stream, it falls back to polling
``GET /v1/jobs/{id}`` with a backoff that resets whenever the job moves.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from vihub_client._sse import Event, SSEParser
from vihub_client.errors import JobCancelled, JobFailed, WaitTimeout, error_from_response
from vihub_client.models import JobData

MAX_SSE_FAILURES = 3
STREAM_READ_TIMEOUT = 45.0  # the server sends a keep-alive comment every 15 s
MAX_POLL_INTERVAL = 10.0


class Waiter:
    """State of one ``wait()``: deadline, SSE position, failure counts and poll backoff."""

    def __init__(self, job: JobData, *, timeout: float | None, poll_interval: float, sse: bool) -> None:
        self.job = job
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.timeout = timeout
        self.parser = SSEParser()
        self.use_sse = sse
        self.sse_failures = 0
        self.base_interval = max(0.05, poll_interval)
        self.poll_interval = self.base_interval
        self._last_seen: tuple[str, int] = (job.state, job.progress.step)
        self._rng = random.Random()
        self._first_poll = True

    # -- time -----------------------------------------------------------------------
    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check_timeout(self) -> None:
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise WaitTimeout(
                "Timed out waiting for the job",
                detail=f"job {self.job.id} is still {self.job.state} after {self.timeout:g} s; it keeps running",
                job=self.job,
            )

    def _clip(self, delay: float) -> float:
        remaining = self.remaining()
        return delay if remaining is None else max(0.0, min(delay, remaining))

    def stream_read_timeout(self) -> float:
        remaining = self.remaining()
        return STREAM_READ_TIMEOUT if remaining is None else max(0.5, min(STREAM_READ_TIMEOUT, remaining + 0.5))

    # -- SSE ------------------------------------------------------------------------
    def feed(self, line: str) -> bool:
        """Feed a stream line; True when it completed an event that changed the job."""
        event = self.parser.feed(line)
        return event is not None and self.on_event(event)

    def on_event(self, event: Event) -> bool:
        data = event.json()
        if not isinstance(data, dict):
            return False
        self.sse_failures = 0
        if event.event == "state" and "id" in data and "progress" in data:
            self.job._update(data)
        elif event.event == "progress":
            self.job._apply_progress(data)
        elif event.event == "end":
            state = data.get("state")
            if state in ("succeeded", "failed", "cancelled"):
                self.job._data["state"] = state
                if "error" in data:
                    self.job._data["error"] = data["error"]
            elif state == "deleted":
                self.job._data["state"] = "cancelled"
                self.job._data["error"] = {"title": "Job deleted", "detail": "The job was deleted while waiting."}
        else:
            return False
        return True

    def stream_response_error(self, response: httpx.Response) -> None:
        """A non-200 answer to the event stream: raise what the caller must see, or degrade."""
        if response.status_code in (401, 403, 404):
            raise error_from_response(response)
        if response.status_code in (429, 502, 503, 504) or response.status_code >= 500:
            self.stream_failed()
        else:  # 405/406/501...: this server has no usable stream
            self.use_sse = False

    def stream_failed(self) -> None:
        self.sse_failures += 1
        if self.sse_failures >= MAX_SSE_FAILURES:
            self.use_sse = False

    def reconnect_delay(self) -> float:
        retry = (self.parser.retry_ms or 1000) / 1000.0
        nominal = retry * (2 ** max(0, self.sse_failures - 1))
        return self._clip(min(MAX_POLL_INTERVAL, nominal))

    # -- polling ----------------------------------------------------------------------
    def next_poll_delay(self) -> float:
        seen = (self.job.state, self.job.progress.step)
        if self._first_poll:
            self._first_poll = False
            self._last_seen = seen
        elif seen != self._last_seen:
            self._last_seen = seen
            self.poll_interval = self.base_interval
        else:
            self.poll_interval = min(MAX_POLL_INTERVAL, self.poll_interval * 1.5)
        jittered = self.poll_interval * (0.8 + 0.4 * self._rng.random())
        return self._clip(jittered)

    # -- the end ----------------------------------------------------------------------
    def finish(self, raise_on_failure: bool) -> None:
        if not raise_on_failure:
            return
        state = self.job.state
        if state in ("failed", "cancelled"):
            problem = self.job.error
            cls = JobCancelled if state == "cancelled" else JobFailed
            title = "Job cancelled" if state == "cancelled" else "Job failed"
            detail = problem.detail or problem.title if problem else None
            raise cls(
                title,
                type=problem.type if problem else "about:blank",
                detail=f"job {self.job.id}: {detail}" if detail else f"job {self.job.id} {state}",
                extra=problem.extra if problem else None,
                job=self.job,
            )


# ---------------------------------------------------------------------------------------
# Progress display


def _fmt_loss(value: Any) -> str:
    if value is None:
        return "-"
    try:
        return f"{float(value):.5g}"
    except (TypeError, ValueError):
        return str(value)


def _fmt_eta(seconds: Any) -> str:
    if seconds is None:
        return "-:--"
    seconds = int(max(0, float(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressDisplay:
    """A rich progress bar on stderr (step/steps, loss, steps/s, the server's ETA).

    ``progress`` may be ``True`` (bar), ``False`` (silent) or a callable invoked with the
    job on every update (for notebooks or logging).
    """

    def __init__(self, progress: bool | Callable[[Any], Any], console: Any = None) -> None:
        self.callback = progress if callable(progress) else None
        self.enabled = progress is True
        self.console = console
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            try:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
            except ImportError:  # pragma: no cover - rich is a dependency
                self.enabled = False
                return self
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:>.0f}/{task.fields[steps]}"),
                TextColumn("loss [cyan]{task.fields[loss]}"),
                TextColumn("{task.fields[rate]} it/s"),
                TextColumn("ETA {task.fields[eta]}"),
                console=self.console or Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("queued", total=None, steps="?", loss="-", rate="-", eta="-:--")
        return self

    def update(self, job: Any) -> None:
        if self.callback is not None:
            self.callback(job)
        if self._progress is None:
            return
        p = job.progress
        rate = f"{p.steps_per_s:.0f}" if p.steps_per_s else "-"
        eta = "0:00" if job.done else _fmt_eta(p.eta_s)
        steps = p.steps
        if job.state == "succeeded" and p.step:
            # stop "auto" ends a converged fit before its step cap: the bar ends full at
            # the step it stopped, not stuck at step/steps.
            steps = p.step
        self._progress.update(
            self._task,
            description=f"{job.id[:12]} {job.state}",
            total=steps or None,
            completed=p.step,
            steps=steps if steps is not None else "?",
            loss=_fmt_loss(p.smoothed_loss if p.smoothed_loss is not None else p.loss),
            rate=rate,
            eta=eta,
        )

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
            self._progress = None

