"""The ``vihub.run_job`` task run in-process (the task function called directly) with the
real engine on a real catalog model, on both store backends."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import numpy as np

from store.job_states import JobState
from store.models import ArtifactKind, utcnow
from store.repositories import ArtifactRepository, JobRepository, LossPointRepository
from worker.tasks import run_job


def get_job(factory: Any, job_id: str) -> Any:
    with factory.begin() as s:
        return JobRepository(s).get(job_id)


def curve(factory: Any, job_id: str) -> list[tuple[int, float | None]]:
    with factory.begin() as s:
        return LossPointRepository(s).list_for_job(job_id)


def test_run_job_succeeds_with_results(worker_settings: Any, session_factory: Any, new_job: Any,
                                       make_spec: Any) -> None:
    job_id = new_job(spec=make_spec(steps=120))
    assert run_job(job_id) == "succeeded"

    job = get_job(session_factory, job_id)
    assert job.state == "succeeded" and job.error is None and job.attempts == 1
    assert job.started_at <= job.finished_at
    assert job.progress["step"] == job.progress["steps"] == 120
    points = curve(session_factory, job_id)
    assert [s for s, _ in points] == list(range(1, 121))
    assert all(v is not None and np.isfinite(v) for _, v in points)
    with session_factory.begin() as s:
        arts = ArtifactRepository(s)
        kinds = {a.kind for a in arts.list_for_job(job_id)}
        assert {ArtifactKind.RESULT_JSON, ArtifactKind.SAMPLES_NPZ, ArtifactKind.PARAMS_SAFETENSORS,
                ArtifactKind.LOG_PROBS_NPZ} <= kinds
        assert ArtifactKind.CHECKPOINT not in kinds  # dropped once the job succeeded
        import json

        result = json.loads(arts.get_content(job_id, ArtifactKind.RESULT_JSON))
    assert len(result["loss"]) == 120
    assert np.allclose(result["loss"], [v for _, v in points])
    assert np.isfinite(result["summary"]["mu"]["mean"])
    # A redelivered message for a finished job changes nothing.
    assert run_job(job_id) == "not-claimed"
    assert get_job(session_factory, job_id).attempts == 1


def test_netcdf_is_stored_after_the_success_is_committed(worker_settings: Any, session_factory: Any,
                                                          new_job: Any, make_spec: Any, monkeypatch: Any,
                                                          wait_until: Any) -> None:
    """The sandbox sends the netCDF file after its result: the job is ``succeeded`` (with
    every other artifact) before the file is stored, by a thread of its own, so the task
    returns without waiting for it; the file then arrives."""
    from worker.runner import JobRunner

    seen_before: list[tuple[str, set[str]]] = []
    receive = JobRunner._receive_late_artifacts

    def spy(self: JobRunner, messages: Any) -> None:
        with session_factory.begin() as s:
            seen_before.append((JobRepository(s).get(self.job_id).state,
                                {a.kind for a in ArtifactRepository(s).list_for_job(self.job_id)}))
        receive(self, messages)

    monkeypatch.setattr(JobRunner, "_receive_late_artifacts", spy)
    job_id = new_job(spec=make_spec(steps=30))
    assert run_job(job_id) == "succeeded"

    def netcdf() -> bytes | None:
        with session_factory.begin() as s:
            return ArtifactRepository(s).get_content(job_id, ArtifactKind.NETCDF)

    content = wait_until(netcdf, 60, interval=0.05, message="the netCDF artifact")
    [(state, kinds_before)] = seen_before
    assert state == "succeeded"
    assert ArtifactKind.RESULT_JSON in kinds_before and ArtifactKind.NETCDF not in kinds_before
    assert content[:4] == b"\x89HDF"
    from inference.results import formats

    assert formats.read_netcdf(content, "posterior")["mu"].shape == (1, 50)


def test_inference_error_fails_the_job_with_problem_json(worker_settings: Any, session_factory: Any,
                                                         new_job: Any, make_spec: Any) -> None:
    spec = make_spec(steps=20)
    spec["model"] = {"source": "def model(y):\n    return undefined_name\n", "entry": "model"}
    job_id = new_job(spec=spec, data={"y": [1.0, 2.0]})
    assert run_job(job_id) == "failed"
    job = get_job(session_factory, job_id)
    assert job.state == "failed"
    assert job.error["type"].startswith("https://vihub.dev/problems/")
    assert job.error["type"] != "https://vihub.dev/problems/internal-error"
    assert job.error["detail"]


def test_cancel_while_running(worker_settings: Any, session_factory: Any, new_job: Any, make_spec: Any) -> None:
    job_id = new_job(spec=make_spec(steps=20_000))

    def cancel_when_running() -> None:
        for _ in range(600):
            job = get_job(session_factory, job_id)
            if job.state == "running" and job.progress:
                with session_factory.begin() as s:
                    JobRepository(s).request_cancel(job_id)
                return
            threading.Event().wait(0.1)

    canceller = threading.Thread(target=cancel_when_running)
    canceller.start()
    outcome = run_job(job_id)
    canceller.join()
    assert outcome == "cancelled"
    job = get_job(session_factory, job_id)
    assert job.state == "cancelled" and job.progress["step"] < 20_000


def test_resume_from_checkpoint_gives_one_continuous_curve(worker_settings: Any, session_factory: Any,
                                                           new_job: Any, make_spec: Any) -> None:
    """A dead first attempt left a checkpoint at step k and points past it; the next
    attempt resumes at k and the stored curve has each step once, from the run that
    produced the result."""
    from inference import FitCallbacks, JobSpec, catalog, fit

    steps = 160
    spec = make_spec(steps=steps, checkpoint_every_s=0.01)
    checkpoints: list[tuple[int, bytes]] = []
    reference = fit(JobSpec.model_validate(spec), dict(catalog.get("eight_schools_noncentered").example_data),
                    callbacks=FitCallbacks(on_checkpoint=lambda blob, step: checkpoints.append((step, blob))))
    k, blob = next((s, b) for s, b in checkpoints if 40 <= s <= 120)

    job_id = new_job(spec=spec)
    past = utcnow() - timedelta(minutes=5)
    with session_factory.begin() as s:
        # Attempt 1 "died": it claimed the job, wrote points up to k + 20 (the last 20 with
        # values that differ from the real ones) and a checkpoint at k.
        JobRepository(s).claim(job_id, "dead-worker", lease_seconds=1, now=past)
        LossPointRepository(s).upsert_many(job_id, [(i + 1, v) for i, v in enumerate(reference.loss[:k])])
        LossPointRepository(s).upsert_many(job_id, [(i, 1e9) for i in range(k + 1, k + 21)])
        ArtifactRepository(s).put(job_id, ArtifactKind.CHECKPOINT, blob, meta={"step": k})

    assert run_job(job_id) == "succeeded"
    job = get_job(session_factory, job_id)
    assert job.attempts == 2
    points = curve(session_factory, job_id)
    assert [s for s, _ in points] == list(range(1, steps + 1))
    assert all(v < 1e8 for _, v in points)
    # Resuming restores params, optimizer state and RNG: the same trajectory.
    assert np.allclose([v for _, v in points], reference.loss, rtol=1e-4, atol=1e-3)


def test_out_of_attempts_is_failed_not_run(worker_settings: Any, session_factory: Any, new_job: Any) -> None:
    job_id = new_job(max_attempts=1)
    past = utcnow() - timedelta(minutes=5)
    with session_factory.begin() as s:
        JobRepository(s).claim(job_id, "dead-worker", lease_seconds=1, now=past)
    assert run_job(job_id) == "failed"
    job = get_job(session_factory, job_id)
    assert job.state == JobState.FAILED.value
    assert job.error["type"].endswith("/too-many-attempts")


def test_a_store_blip_during_progress_neither_fails_the_job_nor_loses_points(
    worker_settings: Any, session_factory: Any, new_job: Any, make_spec: Any, monkeypatch: Any,
) -> None:
    from sqlalchemy.exc import OperationalError

    original = JobRepository.record_progress
    calls = {"n": 0}

    def flaky(self: Any, *args: Any, **kwargs: Any) -> bool:
        calls["n"] += 1
        if calls["n"] in (2, 3):
            raise OperationalError("UPDATE jobs", {}, Exception("connection reset"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(JobRepository, "record_progress", flaky)
    job_id = new_job(spec=make_spec(steps=150))
    assert run_job(job_id) == "succeeded"
    assert calls["n"] > 3
    assert [s for s, _ in curve(session_factory, job_id)] == list(range(1, 151))


def test_a_store_blip_at_the_final_write_does_not_throw_the_fit_away(
    worker_settings: Any, session_factory: Any, new_job: Any, make_spec: Any, monkeypatch: Any,
) -> None:
    from sqlalchemy.exc import OperationalError

    from common.settings import get_settings

    monkeypatch.setattr(get_settings().worker, "final_write_retry_s", (0.05, 0.05, 0.05))
    original = JobRepository.finish
    calls = {"n": 0}

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(JobRepository, "finish", flaky)
    job_id = new_job(spec=make_spec(steps=30))
    assert run_job(job_id) == "succeeded"
    job = get_job(session_factory, job_id)
    assert calls["n"] == 3 and job.state == "succeeded" and job.attempts == 1  # not rerun
    with session_factory.begin() as s:
        assert ArtifactRepository(s).get_content(job_id, ArtifactKind.RESULT_JSON)


def test_an_error_text_with_nul_or_a_lone_surrogate_still_fails_the_job(
    worker_settings: Any, session_factory: Any, new_job: Any, make_spec: Any,
) -> None:
    # Postgres refuses NUL in JSONB and UTF-8 cannot encode a lone surrogate: the final
    # write must still succeed (escaped text), on the first attempt, not leave it running.
    spec = make_spec(steps=20)
    spec["model"] = {"source": 'def model(y):\n    assert False, "boom\\x00boom\\ud800"\n', "entry": "model"}
    job_id = new_job(spec=spec)
    assert run_job(job_id) == "failed"
    job = get_job(session_factory, job_id)
    assert job.state == "failed" and job.attempts == 1
    assert "boom\\x00boom\\ud800" in job.error["detail"], job.error


def test_results_that_cannot_be_written_fail_the_job_once(
    worker_settings: Any, session_factory: Any, new_job: Any, make_spec: Any,
) -> None:
    spec = make_spec(steps=5)
    spec["model"] = {"source": (
        "import torch\nimport pyro\nimport pyro.distributions as dist\n\n"
        "def model(y):\n"
        "    mu = pyro.sample('mu', dist.Normal(0.0, 1.0))\n"
        "    pyro.deterministic('d', torch.ones(1, dtype=torch.complex64))\n"
        "    with pyro.plate('data', len(y)):\n"
        "        pyro.sample('obs', dist.Normal(mu, 1.0), obs=y)\n"), "entry": "model"}
    job_id = new_job(spec=spec)
    assert run_job(job_id) == "failed"
    job = get_job(session_factory, job_id)
    assert job.attempts == 1 and job.error["type"].endswith("/result-error"), job.error
