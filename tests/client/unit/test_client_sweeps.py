"""The SDK's sweeps and comparisons (``Client.sweep``, ``Client.compare``, ``Job.continue_fit``,
``Job.ppc``) and the ``vihub sweep`` / ``vihub compare`` commands, against the fake server."""

from __future__ import annotations

import json

import httpx
import pytest
from client_fakes import job_json, problem
from typer.testing import CliRunner
from vihub_client import Sweep, cli

runner = CliRunner()


def _row(job_id: str, guide: str, elbo: float, k_hat: float, recommended: bool = False) -> dict:
    return {"job_id": job_id, "point": {"guide.auto": guide}, "model": {"catalog": "eight_schools_noncentered"},
            "guide": guide, "elbo_name": "Trace_ELBO", "optimizer": "Adam", "lr": 0.05, "elbo": elbo,
            "elbo_se": 0.1, "elbo_draws": 400, "k_hat": k_hat, "k_hat_reading": "good" if k_hat < 0.5 else "unreliable",
            "trusted": k_hat <= 0.7, "elpd_loo": -31.0, "elpd_loo_se": 1.0, "p_loo": 1.2, "elpd_diff": 0.0,
            "elpd_diff_se": 0.0, "loo_weight": 0.5, "loo_warning": False, "loo_max_pareto_k": 0.3,
            "n_observations": 8, "steps": 600, "wall_s": 2.5, "converged": True, "created_at": None,
            "labels": {}, "recommended": recommended}


TABLE = {
    "rows": [_row("job_a", "AutoNormal", -40.0, 0.3, recommended=True), _row("job_b", "AutoMultivariateNormal", -39.0, 0.9)],
    "recommended": "job_a",
    "rule": {"job_id": "job_a", "criterion": "elbo", "models_differ": False,
             "reason": "the same model: the highest ELBO among fits with k-hat <= 0.7"},
    "sort": "elbo", "order": "desc", "notes": [],
}


def _sweep_json(state: str = "queued", done: bool = False) -> dict:
    job_state = "succeeded" if done else "queued"
    return {"id": "sw_1", "name": None, "state": state, "done": done,
            "counts": {"queued": 0 if done else 2, "running": 0, "succeeded": 2 if done else 0, "failed": 0,
                       "cancelled": 0},
            "progress": 1.0 if done else 0.0, "created_at": "2026-12-02T13:00:00Z", "axes": {}, "base": {},
            "labels": {}, "links": {"self": "/v1/sweeps/sw_1", "comparison": "/v1/sweeps/sw_1/comparison",
                                    "cancel": "/v1/sweeps/sw_1/cancel"},
            "members": [{"position": i, "point": {"guide.auto": g}, "job": job_json(j, state=job_state)}
                        for i, (j, g) in enumerate((("job_a", "AutoNormal"), ("job_b", "AutoMultivariateNormal")))]}


def test_sweep_posts_the_base_and_axes_and_waits(server) -> None:
    server.add("POST", "/v1/sweeps", httpx.Response(202, json=_sweep_json()))
    server.add("GET", "/v1/sweeps/sw_1", httpx.Response(200, json=_sweep_json()),
               httpx.Response(200, json=_sweep_json("finished", done=True)))
    client = server.client()
    sweep = client.sweep("catalog:eight_schools_noncentered", guide="AutoNormal", inference={"steps": 600},
                         axes={"guide.auto": ["AutoNormal", "AutoMultivariateNormal"]}, labels={"team": "a"})
    assert isinstance(sweep, Sweep) and sweep.id == "sw_1" and not sweep.done
    body = json.loads(server.requests[0].content)
    assert body["base"]["model"] == {"catalog": "eight_schools_noncentered"}
    assert body["base"]["inference"] == {"steps": 600}
    assert body["axes"] == {"guide.auto": ["AutoNormal", "AutoMultivariateNormal"]} and body["labels"] == {"team": "a"}
    assert server.requests[0].headers.get("Idempotency-Key")
    assert sweep.wait(poll_interval=0.5).done and sweep.state == "finished"
    assert server.sleeps == [0.5]
    assert [job.id for job in sweep.jobs()] == ["job_a", "job_b"]
    with pytest.raises(ValueError, match="exactly one"):
        client.sweep(base={"model": {"catalog": "x"}})


def test_compare_returns_a_dataframe_with_the_recommendation(server) -> None:
    pytest.importorskip("pandas")
    server.add("GET", "/v1/compare", httpx.Response(200, json=TABLE))
    frame = server.client().compare(["job_a", "job_b"], sort="elbo")
    request = server.requests[0]
    assert request.url.params["jobs"] == "job_a,job_b" and request.url.params["sort"] == "elbo"
    assert list(frame.index) == ["job_a", "job_b"]
    assert frame.loc["job_a", "recommended"] and not frame.loc["job_b", "trusted"]
    assert frame.loc["job_b", "point:guide.auto"] == "AutoMultivariateNormal"
    assert list(frame.columns[:3]) == ["recommended", "trusted", "guide"]
    assert frame.attrs["recommended"] == "job_a" and frame.attrs["rule"]["criterion"] == "elbo"


def test_sweep_comparison_and_to_arviz_per_member(server, monkeypatch) -> None:
    pytest.importorskip("pandas")
    server.add("GET", "/v1/sweeps/sw_1/comparison", httpx.Response(200, json=TABLE))
    sweep = Sweep(server.client(), _sweep_json("finished", done=True))
    assert sweep.comparison(raw=True) == TABLE
    assert sweep.comparison().attrs["recommended"] == "job_a"
    from vihub_client.client import Job

    monkeypatch.setattr(Job, "to_arviz", lambda self: f"idata-{self.id}")
    assert sweep.to_arviz() == {"job_a": "idata-job_a", "job_b": "idata-job_b"}


def test_continue_fit_and_ppc(server) -> None:
    server.add("POST", "/v1/jobs/job_a/continue", httpx.Response(202, json=job_json("job_c")))
    server.add("GET", "/v1/jobs/job_a/ppc", httpx.Response(200, json={"job_id": "job_a", "sites": {}, "quantiles": [0.5],
                                                                      "notes": []}))
    from vihub_client.client import Job

    source = Job(server.client(), job_json("job_a", state="succeeded"))
    continued = source.continue_fit(100, labels={"why": "more"})
    assert continued.id == "job_c"
    assert json.loads(server.requests[0].content) == {"steps": 100, "labels": {"why": "more"}}
    assert server.requests[0].headers.get("Idempotency-Key")
    assert source.ppc([0.5])["job_id"] == "job_a"
    assert server.requests[1].url.params["quantiles"] == "0.5"


@pytest.fixture
def app(server, monkeypatch):
    monkeypatch.setattr(cli, "_client", lambda url, key: server.client())
    return cli.make_app(with_server=False)


def test_cli_compare_prints_the_table(app, server) -> None:
    server.add("GET", "/v1/compare", httpx.Response(200, json=TABLE))
    result = runner.invoke(app, ["compare", "job_a", "job_b", "--sort", "k_hat", "--asc"])
    assert result.exit_code == 0, result.output
    assert "recommended: job_a" in result.stdout and "★" in result.stdout
    assert "AutoMultivariateNormal" in result.stdout and "-40" in result.stdout
    assert server.requests[0].url.params["order"] == "asc" and server.requests[0].url.params["sort"] == "k_hat"
    assert runner.invoke(app, ["compare"]).exit_code == 2


def test_cli_sweep_with_axes_waits_and_prints(app, server, tmp_path) -> None:
    server.add("POST", "/v1/sweeps", httpx.Response(202, json=_sweep_json()))
    server.add("GET", "/v1/sweeps/sw_1", httpx.Response(200, json=_sweep_json("finished", done=True)))
    server.add("GET", "/v1/sweeps/sw_1/comparison", httpx.Response(200, json=TABLE))
    base = tmp_path / "base.json"
    base.write_text(json.dumps({"model": {"catalog": "eight_schools_noncentered"}}))
    result = runner.invoke(app, ["sweep", str(base), "-a", "guide.auto=AutoNormal,AutoMultivariateNormal",
                                 "-a", "inference.optimizer.lr=0.01,0.05", "--wait"])
    assert result.exit_code == 0, result.output
    body = json.loads(server.requests[0].content)
    assert body["axes"] == {"guide.auto": ["AutoNormal", "AutoMultivariateNormal"],
                            "inference.optimizer.lr": [0.01, 0.05]}
    assert "recommended: job_a" in result.stdout


def test_cli_sweep_refused_exits_3(app, server, tmp_path) -> None:
    server.add("POST", "/v1/sweeps", problem(429, "too-many-concurrent-jobs", "Too many concurrent jobs",
                                             "The sweep needs 4 job slots"))
    base = tmp_path / "base.json"
    base.write_text("{}")
    result = runner.invoke(app, ["sweep", str(base), "-a", "inference.seed=1,2,3,4"])
    assert result.exit_code == 3 and "4 job slots" in result.output
