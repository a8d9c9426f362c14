"""``Job.wait``: SSE progress, reconnects with Last-Event-ID, polling fallback, outcomes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import vihub_client as vc
from client_fakes import job_json, problem, sse
from vihub_client._sse import SSEParser


def _progress(step: int, state: str = "running", loss: float = 10.0) -> dict:
    return {"id": "j", "state": state, "step": step, "steps": 100, "loss": loss, "smoothed_loss": loss,
            "steps_per_s": 50.0, "eta_s": (100 - step) / 50.0}


def test_sse_parser() -> None:
    parser = SSEParser()
    lines = ["retry: 2000", "", ": keep-alive", "", "event: progress", "id: 7", 'data: {"a":', "data: 1}", "",
             "data: plain", ""]
    events = [e for e in (parser.feed(line) for line in lines) if e is not None]
    assert parser.retry_ms == 2000
    assert [(e.event, e.id, e.data) for e in events] == [("progress", "7", '{"a":\n1}'), ("message", None, "plain")]
    assert events[0].json() == {"a": 1}
    assert parser.last_event_id == "7"


def test_wait_follows_the_event_stream(server) -> None:
    stream = sse(("state", job_json("j", "running", 0), 0), ("progress", _progress(50, loss=20.0), 50),
                 ("progress", _progress(100, loss=5.0), 100), ("state", job_json("j", "succeeded", 100), 100),
                 ("end", {"id": "j", "state": "succeeded", "error": None}, 100))
    server.add("GET", "/v1/jobs/j/events", httpx.Response(200, content=stream, headers={"content-type": "text/event-stream"}))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "queued")),
               httpx.Response(200, json=job_json("j", "succeeded", 100, loss=5.0)))
    seen = []
    with server.client() as client:
        job = client.job("j")
        result = job.wait(progress=lambda j: seen.append((j.state, j.progress.step, j.progress.loss)))
    assert result is job and job.state == "succeeded" and job.finished_at is not None
    assert ("running", 50, 20.0) in seen and ("running", 100, 5.0) in seen and seen[-1][0] == "succeeded"
    assert len(server.calls("GET", "/v1/jobs/j/events")) == 1


def test_wait_reconnects_with_last_event_id(server) -> None:
    first = sse(("state", job_json("j", "running", 10), 10), ("progress", _progress(10), 10))  # closed early
    second = sse(("progress", _progress(100), 100), ("end", {"id": "j", "state": "succeeded", "error": None}, 100))
    server.add("GET", "/v1/jobs/j/events", httpx.Response(200, content=first), httpx.Response(200, content=second))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running", 10)),
               httpx.Response(200, json=job_json("j", "succeeded", 100)))
    with server.client() as client:
        job = client.job("j").wait(progress=False)
    assert job.state == "succeeded"
    requests = server.calls("GET", "/v1/jobs/j/events")
    assert [r.headers.get("Last-Event-ID") for r in requests] == [None, "10"]
    assert server.sleeps == [pytest.approx(0.01)]  # the server's retry: 10 ms


def test_wait_falls_back_to_polling_when_streaming_is_unavailable(server) -> None:
    server.add("GET", "/v1/jobs/j/events", problem(406, "not-acceptable", "Not acceptable"))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "queued")),
               httpx.Response(200, json=job_json("j", "running", 10)),
               httpx.Response(200, json=job_json("j", "running", 10)),
               httpx.Response(200, json=job_json("j", "running", 10)),
               httpx.Response(200, json=job_json("j", "succeeded", 100)))
    with server.client() as client:
        job = client.job("j").wait(progress=False, poll_interval=1.0)
    assert job.state == "succeeded"
    assert len(server.calls("GET", "/v1/jobs/j/events")) == 1
    # backoff grows while nothing changes and resets when the job moves (jitter +-20%)
    assert 0.8 <= server.sleeps[0] <= 1.2
    assert 0.8 <= server.sleeps[1] <= 1.2 and server.sleeps[3] > server.sleeps[1] * 1.1


def test_wait_falls_back_after_repeated_stream_failures(server) -> None:
    def broken(request: httpx.Request, _: dict) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    server.route("GET", "/v1/jobs/j/events")(broken)
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running", 1)),
               httpx.Response(200, json=job_json("j", "succeeded", 100)))
    with server.client() as client:
        assert client.job("j").wait(progress=False).state == "succeeded"
    assert len(server.calls("GET", "/v1/jobs/j/events")) == 3


def test_wait_raises_for_failed_and_cancelled(server) -> None:
    error = {"type": "https://vihub.dev/problems/non-finite-loss", "title": "Non finite loss", "status": 422,
             "detail": "loss is nan at step 3"}
    end = sse(("end", {"id": "j", "state": "failed", "error": error}, 3))
    server.add("GET", "/v1/jobs/j/events", httpx.Response(200, content=end))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running")),
               httpx.Response(200, json=job_json("j", "failed", 3, error=error)))
    with server.client() as client:
        job = client.job("j")
        with pytest.raises(vc.JobFailed) as info:
            job.wait(progress=False)
    assert info.value.job is job and info.value.slug == "non-finite-loss"
    assert "loss is nan at step 3" in info.value.detail

    server.add("GET", "/v1/jobs/k", httpx.Response(200, json=job_json("k", "cancelled")))
    with server.client() as client:
        with pytest.raises(vc.JobCancelled):
            client.job("k").wait(progress=False)
        assert client.job("k").wait(progress=False, raise_on_failure=False).state == "cancelled"


def test_wait_timeout(server) -> None:
    server.add("GET", "/v1/jobs/j/events", problem(406, "not-acceptable", "Not acceptable"))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running", 1)))
    with server.client() as client:
        job = client.job("j")
        with pytest.raises(vc.WaitTimeout) as info:
            job.wait(timeout=0.0, progress=False)
    assert isinstance(info.value, TimeoutError) and info.value.job is job


def test_wait_on_unknown_job_raises_not_found(server) -> None:
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running")))
    server.add("GET", "/v1/jobs/j/events", problem(404, "job-not-found", "Job not found"))
    with server.client() as client, pytest.raises(vc.NotFound):
        client.job("j").wait(progress=False)


def test_wait_with_rich_progress_bar(server) -> None:
    from io import StringIO

    from rich.console import Console
    from vihub_client._wait import ProgressDisplay

    buffer = StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with ProgressDisplay(True, console=console) as display:
        display.update(vc.Job(None, job_json("j", "running", 40, loss=12.3456)))  # type: ignore[arg-type]
    text = buffer.getvalue()
    assert "40/100" in text and "12.346" in text and "running" in text


def test_async_wait(server) -> None:
    stream = sse(("progress", _progress(60), 60), ("end", {"id": "j", "state": "succeeded", "error": None}, 100))
    server.add("GET", "/v1/jobs/j/events", httpx.Response(200, content=stream))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "queued")),
               httpx.Response(200, json=job_json("j", "succeeded", 100)))
    steps = []

    async def go():
        async with server.async_client() as client:
            job = await client.job("j")
            await job.wait(progress=lambda j: steps.append(j.progress.step))
            return job

    job = asyncio.run(go())
    assert job.state == "succeeded" and 60 in steps


def test_async_list_and_results(server) -> None:
    server.add("GET", "/v1/jobs", lambda r, _: httpx.Response(200, json=(
        {"items": [job_json("b")], "next_page_token": None} if r.url.params.get("page_token") == "t"
        else {"items": [job_json("a")], "next_page_token": "t"})))
    server.add("GET", "/v1/jobs/a/summary", httpx.Response(200, json={"job_id": "a", "summary": {"mu": {"mean": 1.0}}}))

    async def go():
        async with server.async_client() as client:
            ids = [job.id async for job in client.list_jobs()]
            first = await client.job("a") if False else (await client.jobs_page())[0][0]
            return ids, await first.summary()

    ids, summary = asyncio.run(go())
    assert ids == ["a", "b"] and summary == {"mu": {"mean": 1.0}}
