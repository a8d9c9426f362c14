"""The transition table itself."""

from __future__ import annotations

import pytest

from store.job_states import (
    FINAL_STATES,
    InvalidTransition,
    JobState,
    can_transition,
    check_transition,
    sources_for,
)


@pytest.mark.parametrize(
    ("source", "target"),
    [("queued", "running"), ("queued", "cancelled"), ("queued", "failed"), ("running", "succeeded"),
     ("running", "failed"), ("running", "cancelled"), ("running", "queued")],
)
def test_allowed(source: str, target: str) -> None:
    assert can_transition(source, target)
    check_transition("j", source, target)


@pytest.mark.parametrize(
    ("source", "target"),
    [("queued", "succeeded"), ("queued", "queued"), ("succeeded", "running"), ("failed", "queued"),
     ("cancelled", "running"), ("succeeded", "failed")],
)
def test_forbidden(source: str, target: str) -> None:
    assert not can_transition(source, target)
    with pytest.raises(InvalidTransition):
        check_transition("j", source, target)


def test_final_states_have_no_exit_and_sources_are_derived() -> None:
    for state in FINAL_STATES:
        assert not any(can_transition(state, t) for t in JobState)
    assert sources_for("running") == {JobState.QUEUED}
    assert sources_for("cancelled") == {JobState.QUEUED, JobState.RUNNING}
