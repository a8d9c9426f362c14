"""The job state machine: the one place that says which state changes are allowed.

::

    queued  -> running      a worker claimed it (atomic UPDATE, attempts += 1)
    queued  -> cancelled    cancelled before any worker picked it up
    queued  -> failed       it can never run (attempt cap reached, data gone)
    running -> succeeded | failed | cancelled     the run ended
    running -> queued       lease expired (worker died) or message redelivered: reclaim

``succeeded``, ``failed`` and ``cancelled`` are final: nothing leaves them.

``JobRepository`` derives the ``WHERE state IN (...)`` guard of every transition from
``sources_for(target)``, so the rules here and the SQL cannot drift apart.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


FINAL_STATES: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.QUEUED, JobState.RUNNING})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED, JobState.FAILED}),
    JobState.RUNNING: frozenset(
        {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}


class InvalidTransition(Exception):
    """A state change the machine forbids (e.g. ``succeeded -> running``)."""

    kind = "invalid-transition"

    def __init__(self, job_id: str, source: str | None, target: str) -> None:
        super().__init__(f"job {job_id}: cannot go from {source!r} to {target!r}")
        self.job_id = job_id
        self.source = source
        self.target = target


def can_transition(source: str, target: str) -> bool:
    return JobState(target) in TRANSITIONS[JobState(source)]


def check_transition(job_id: str, source: str, target: str) -> None:
    if not can_transition(source, target):
        raise InvalidTransition(job_id, source, target)


def sources_for(target: str) -> frozenset[JobState]:
    """Every state from which ``target`` may be entered."""
    target = JobState(target)
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


def is_final(state: str) -> bool:
    return JobState(state) in FINAL_STATES
