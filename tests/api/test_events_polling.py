"""How often the job event stream looks at the job row (``api.jobs.events.next_poll_s``):
fast while the job's end may be near, at the slow cadence otherwise."""

from __future__ import annotations

from types import SimpleNamespace

from api.jobs.events import next_poll_s

OPTIONS = SimpleNamespace(sse_poll_s=0.5, sse_fast_poll_s=0.05, sse_fast_window_s=3.0)


def job(state: str = "running", eta_s: float | None = None) -> dict:
    return {"state": state, "progress": {"step": 10, "steps": 100, "eta_s": eta_s}}


def test_fast_during_the_first_seconds_of_a_stream() -> None:
    assert next_poll_s(OPTIONS, job("queued"), stream_age_s=0.0, report_age_s=0.0) == 0.05
    assert next_poll_s(OPTIONS, job("running"), stream_age_s=2.9, report_age_s=2.9) == 0.05


def test_slow_afterwards_unless_the_eta_is_near() -> None:
    assert next_poll_s(OPTIONS, job("queued"), stream_age_s=10, report_age_s=10) == 0.5
    assert next_poll_s(OPTIONS, job("running", eta_s=None), stream_age_s=10, report_age_s=0.1) == 0.5
    assert next_poll_s(OPTIONS, job("running", eta_s=60.0), stream_age_s=10, report_age_s=0.1) == 0.5
    # The ETA of the last report (seen 0.6 s ago) runs out within one slow poll.
    assert next_poll_s(OPTIONS, job("running", eta_s=1.0), stream_age_s=10, report_age_s=0.6) == 0.05


def test_slow_again_long_past_the_eta() -> None:
    # Predicted to end 8 s ago and still running: the estimate was wrong.
    assert next_poll_s(OPTIONS, job("running", eta_s=1.0), stream_age_s=30, report_age_s=9.0) == 0.5


def test_fast_never_slower_than_the_slow_cadence() -> None:
    options = SimpleNamespace(sse_poll_s=0.02, sse_fast_poll_s=0.05, sse_fast_window_s=3.0)
    assert next_poll_s(options, job("queued"), stream_age_s=0.0, report_age_s=0.0) == 0.02
