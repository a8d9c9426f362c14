"""Job handles: listing pages, cancel, and result parsing (npz, JSON fallback, ArviZ)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
import vihub_client as vc
from client_fakes import job_json, problem
from vihub_client import _formats


def test_list_jobs_follows_page_tokens(server) -> None:
    pages = {
        None: {"items": [job_json("a"), job_json("b")], "next_page_token": "t1"},
        "t1": {"items": [job_json("c")], "next_page_token": "t2"},
        "t2": {"items": [], "next_page_token": None},
    }

    def page(request: httpx.Request, _: dict) -> httpx.Response:
        token = request.url.params.get("page_token")
        return httpx.Response(200, json=pages[token])

    server.route("GET", "/v1/jobs")(page)
    with server.client() as client:
        ids = [job.id for job in client.list_jobs(state="running", label={"team": "a", "x": "1"}, page_size=2)]
    assert ids == ["a", "b", "c"]
    first = parse_qs(server.requests[0].url.query.decode())
    assert first == {"state": ["running"], "label": ["team=a", "x=1"], "page_size": ["2"]}
    assert [r.url.params.get("page_token") for r in server.requests] == [None, "t1", "t2"]


def test_list_jobs_limit_stops_fetching(server) -> None:
    server.add("GET", "/v1/jobs", httpx.Response(200, json={"items": [job_json("a"), job_json("b")], "next_page_token": "t"}))
    with server.client() as client:
        assert [j.id for j in client.list_jobs(limit=1)] == ["a"]
    assert len(server.requests) == 1


def test_job_attributes_and_cancel(server) -> None:
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running", 40, loss=12.5, labels={"a": "b"})))
    server.add("POST", "/v1/jobs/j/cancel", httpx.Response(202, json=job_json("j", "cancelled", 40)))
    with server.client() as client:
        job = client.job("j")
        assert (job.state, job.progress.step, job.progress.steps, job.progress.loss) == ("running", 40, 100, 12.5)
        assert job.progress.fraction == 0.4 and not job.done
        assert job.labels == {"a": "b"} and job.created_at.year == 2026 and job.finished_at is None
        assert "j running step 40/100" in repr(job)
        job.cancel()
        assert job.state == "cancelled" and job.done


def test_failed_job_exposes_its_problem(server) -> None:
    error = {"type": "https://vihub.dev/problems/non-finite-loss", "title": "Non finite loss", "status": 422,
             "detail": "loss is nan at step 12", "step": 12}
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "failed", 12, error=error)))
    with server.client() as client:
        job = client.job("j")
    assert job.error.slug == "non-finite-loss" and job.error.step == 12


def _npz(**arrays) -> bytes:
    np = pytest.importorskip("numpy")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _results_server(server, np) -> None:
    rng = np.random.default_rng(0)
    samples = {"mu": rng.normal(4.4, 3.0, 200), "tau": np.abs(rng.normal(3.0, 1.0, 200)),
               "theta": rng.normal(4.0, 5.0, (200, 8)), "predictive/obs": rng.normal(0, 10, (200, 8))}
    log_probs = {"log_joint": rng.normal(-30, 1, 200), "log_q": rng.normal(-5, 1, 200),
                 "log_weight": rng.normal(-25, 1, 200), "model_sites/mu": rng.normal(-2, 1, 200),
                 "pointwise/obs": rng.normal(-4, 1, (200, 8))}
    server.samples, server.log_probs = samples, log_probs

    def by_format(npz_body: bytes, json_body: dict):
        def handler(request: httpx.Request, _: dict) -> httpx.Response:
            if request.url.params.get("format") == "npz":
                return httpx.Response(200, content=npz_body, headers={"content-type": "application/x-npz"})
            return httpx.Response(200, json=json_body)
        return handler

    server.route("GET", "/v1/jobs/j/samples")(by_format(_npz(**samples), {
        "job_id": "j", "samples": {k: v.tolist() for k, v in samples.items() if "/" not in k},
        "predictive": {"obs": samples["predictive/obs"].tolist()}}))
    server.route("GET", "/v1/jobs/j/log-probs")(by_format(_npz(**log_probs), {
        "job_id": "j", "log_probs": {"log_joint": log_probs["log_joint"].tolist(), "log_q": log_probs["log_q"].tolist(),
                                     "log_weight": log_probs["log_weight"].tolist(),
                                     "model_sites": {"mu": log_probs["model_sites/mu"].tolist()},
                                     "pointwise": {"obs": log_probs["pointwise/obs"].tolist()}}}))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "succeeded", 100)))
    server.add("GET", "/v1/jobs/j/summary", httpx.Response(200, json={"job_id": "j", "summary": {"mu": {"mean": 4.4}}}))
    server.add("GET", "/v1/jobs/j/diagnostics", httpx.Response(200, json={
        "job_id": "j", "diagnostics": {"k_hat": 0.3, "warnings": []}, "meta": {"seed": 0}}))
    server.add("GET", "/v1/jobs/j/params", httpx.Response(200, json={
        "job_id": "j", "guide_params": {"AutoNormal.locs.mu": {"value": 4.4, "shape": [], "dtype": "float32",
                                                              "constraint": "real"}}, "model_params": {}}))
    server.add("GET", "/v1/jobs/j/loss", httpx.Response(200, json={
        "job_id": "j", "state": "succeeded", "num_points": 100, "steps": [0, 99], "loss": [50.0, 31.0],
        "elbo_terms": None, "grad_norms": None}))


def test_results_as_numpy(server) -> None:
    np = pytest.importorskip("numpy")
    _results_server(server, np)
    with server.client() as client:
        job = client.job("j")
        samples = job.samples()
        assert set(samples) == {"mu", "tau", "theta", "predictive/obs"}
        np.testing.assert_array_equal(samples["theta"], server.samples["theta"])
        log_probs = job.log_probs()
        np.testing.assert_array_equal(log_probs["pointwise/obs"], server.log_probs["pointwise/obs"])
        assert job.summary() == {"mu": {"mean": 4.4}}
        assert job.diagnostics() == {"k_hat": 0.3, "warnings": [], "meta": {"seed": 0}}
        assert job.params()["guide_params"]["AutoNormal.locs.mu"]["value"] == 4.4
        assert job.loss(max_points=2)["loss"] == [50.0, 31.0]
    loss_request = server.calls("GET", "/v1/jobs/j/loss")[0]
    assert loss_request.url.params["max_points"] == "2"
    assert server.calls("GET", "/v1/jobs/j/samples")[0].url.params["format"] == "npz"


def test_results_without_numpy_are_json_lists(server, monkeypatch) -> None:
    """Where numpy is missing (the bare client install), results come as JSON lists under
    the same keys as the NPZ files."""
    monkeypatch.setattr(_formats, "have_numpy", lambda: False)
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "succeeded", 100)))
    server.add("GET", "/v1/jobs/j/samples", httpx.Response(200, json={
        "job_id": "j", "samples": {"mu": [1.0, 2.0], "theta": [[1.0, 2.0], [3.0, 4.0]]},
        "predictive": {"obs": [[0.5], [0.7]]}}))
    server.add("GET", "/v1/jobs/j/log-probs", httpx.Response(200, json={
        "job_id": "j", "log_probs": {"log_joint": [-3.0, -4.0], "model_sites": {"mu": [-1.0, -1.5]},
                                     "pointwise": {"obs": [[-0.1], [-0.2]]}}}))
    server.add("POST", "/v1/jobs/j/predict", httpx.Response(200, json={"predictive": {"obs": [[1.0], [2.0]]}}))
    with server.client() as client:
        job = client.job("j")
        samples = job.samples()
        log_probs = job.log_probs()
        predictive = job.predict({"x": [1.0]}, num_samples=2)
    assert samples == {"mu": [1.0, 2.0], "theta": [[1.0, 2.0], [3.0, 4.0]], "predictive/obs": [[0.5], [0.7]]}
    assert log_probs == {"log_joint": [-3.0, -4.0], "model_sites/mu": [-1.0, -1.5], "pointwise/obs": [[-0.1], [-0.2]]}
    assert predictive == {"obs": [[1.0], [2.0]]}
    assert all("format" not in r.url.params for r in server.requests)


def test_to_arviz_groups_and_summary(server) -> None:
    np = pytest.importorskip("numpy")
    az = pytest.importorskip("arviz")
    _results_server(server, np)
    with server.client() as client:
        idata = client.job("j").to_arviz()
    assert set(idata.groups()) >= {"posterior", "posterior_predictive", "log_likelihood", "sample_stats"}
    assert idata.posterior["theta"].shape == (1, 200, 8)
    assert idata.posterior_predictive["obs"].shape == (1, 200, 8)
    assert set(idata.sample_stats.data_vars) == {"lp", "log_q", "log_weight"}
    table = az.summary(idata, var_names=["mu", "tau"], kind="stats")
    assert abs(table.loc["mu", "mean"] - server.samples["mu"].mean()) < 1e-2


def test_download_writes_every_artifact(server, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    _results_server(server, np)
    server.add("GET", "/v1/jobs/j/params", lambda r, _: (
        httpx.Response(200, content=b"ST", headers={"content-type": "application/octet-stream"})
        if r.url.params.get("format") == "safetensors"
        else problem(406, "not-acceptable", "Format not available") if r.url.params.get("format") == "pt"
        else httpx.Response(200, json={"job_id": "j", "guide_params": {}, "model_params": {}})))
    server.add("GET", "/v1/jobs/j/samples", lambda r, _: httpx.Response(200, content=b"NC" if r.url.params.get("format") == "netcdf" else _npz(mu=np.zeros(3))))
    with server.client() as client:
        written = client.job("j").download(tmp_path / "out")
    names = set(written)
    assert names == {"job.json", "params.json", "params.safetensors", "loss.json", "samples.npz", "samples.nc",
                     "log_probs.npz", "diagnostics.json", "summary.json"}  # params.pt: 406 -> skipped
    assert json.loads((tmp_path / "out" / "job.json").read_text())["id"] == "j"
    assert (tmp_path / "out" / "params.safetensors").read_bytes() == b"ST"


def test_download_in_one_format(server, tmp_path: Path) -> None:
    server.add("GET", r"/v1/jobs/j(/.*)?", lambda r, _: httpx.Response(200, content=f"{r.url.path}?{r.url.query.decode()}".encode()))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "succeeded")))
    with server.client() as client:
        written = client.job("j").download(tmp_path, format="npz")
    assert set(written) == {"job.json", "params.npz", "loss.npz", "samples.npz", "log_probs.npz",
                            "diagnostics.json", "summary.json"}
    assert (tmp_path / "samples.npz").read_bytes() == b"/v1/jobs/j/samples?format=npz"
    assert (tmp_path / "summary.json").read_bytes() == b"/v1/jobs/j/summary?"


def test_results_not_ready_is_a_conflict(server) -> None:
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "running", 3)))
    server.add("GET", "/v1/jobs/j/summary", problem(409, "results-not-ready", "Results not ready", "it is still running"))
    with server.client() as client, pytest.raises(vc.Conflict) as info:
        client.job("j").summary()
    assert info.value.slug == "results-not-ready"


def test_predict(server) -> None:
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "succeeded")))
    server.add("POST", "/v1/jobs/j/predict", httpx.Response(200, json={"predictive": {"obs": [[1.0, 2.0], [3.0, 4.0]]}}))
    with server.client() as client:
        out = client.job("j").predict({"x": [0.5, 1.5]}, num_samples=2)
    assert json.loads(server.requests[-1].content) == {"data": {"inline": {"x": [0.5, 1.5]}}, "num_samples": 2}
    obs = out["obs"]
    assert (obs.tolist() if hasattr(obs, "tolist") else obs) == [[1.0, 2.0], [3.0, 4.0]]


def test_download_netcdf_is_one_inference_data_plus_log_prob_npz(server, tmp_path: Path) -> None:
    server.add("GET", r"/v1/jobs/j(/.*)?", lambda r, _: httpx.Response(200, content=r.url.query))
    server.add("GET", "/v1/jobs/j", httpx.Response(200, json=job_json("j", "succeeded")))
    with server.client() as client:
        written = client.job("j").download(tmp_path, format="netcdf")
    assert set(written) == {"job.json", "params.json", "loss.json", "samples.nc", "log_probs.npz",
                            "diagnostics.json", "summary.json"}
    assert (tmp_path / "samples.nc").read_bytes() == b"format=netcdf"
