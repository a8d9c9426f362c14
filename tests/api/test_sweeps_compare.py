"""Comparison, warm starts, posterior predictive checks and sweeps through the API.

Jobs are submitted over HTTP and run by the real worker code in-process
(``worker.runner.JobRunner`` on the app's store, each fit in its sandbox), then read back
over HTTP. SQLite store (the Postgres path is the e2e test's).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

QUADRATIC_SOURCE = '''
import pyro
import pyro.distributions as dist

def model(x, y=None):
    a = pyro.sample("a", dist.Normal(0.0, 5.0))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    c = pyro.sample("c", dist.Normal(0.0, 5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(a + b * x + c * x * x, 0.5), obs=y)
'''

LINEAR_SOURCE = '''
import pyro
import pyro.distributions as dist

def model(x, y=None):
    a = pyro.sample("a", dist.Normal(0.0, 5.0))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(a + b * x, 0.5), obs=y)
'''


def _quadratic_data() -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    x = np.linspace(-2.0, 2.0, 30)
    y = 1.0 - 0.5 * x + 1.5 * x**2 + rng.normal(0.0, 0.5, size=x.size)
    return {"x": x.round(4).tolist(), "y": y.round(4).tolist()}


def _body(source: str, data: dict[str, Any], steps: int = 400, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"source": source},
        "guide": {"auto": "AutoNormal"},
        "data": {"inline": data},
        "inference": {"steps": steps, "seed": 2, "optimizer": {"name": "Adam", "lr": 0.05}},
        "outputs": {"num_samples": 300, "elbo_terms_every": 0, "grad_norms_every": 0},
    }
    for key, value in extra.items():
        body[key] = {**body.get(key, {}), **value} if isinstance(value, dict) else value
    return body


def run_jobs(api: Any, *job_ids: str) -> None:
    """Run queued jobs with the worker's own code, on the app's store."""
    from worker.runner import JobRunner

    for job_id in job_ids:
        outcome = JobRunner(job_id, settings=api.settings, factory=api.runtime.sessionmaker,
                            publish=lambda *_: None).run()
        assert outcome in ("succeeded", "failed"), outcome


def submit(api: Any, headers: dict[str, str], body: dict[str, Any]) -> str:
    response = api.client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture
def tenant(api_sqlite: Any) -> dict[str, str]:
    return api_sqlite.tenant_headers()


def test_quadratic_beats_linear_and_loo_matches_arviz(api_sqlite: Any, tenant: dict[str, str]) -> None:
    import arviz as az

    api, data = api_sqlite, _quadratic_data()
    linear = submit(api, tenant, _body(LINEAR_SOURCE, data))
    quadratic = submit(api, tenant, _body(QUADRATIC_SOURCE, data))
    run_jobs(api, linear, quadratic)

    response = api.client.get(f"/v1/compare?jobs={linear},{quadratic}&sort=elpd_loo", headers=tenant)
    assert response.status_code == 200, response.text
    table = response.json()
    rows = {row["job_id"]: row for row in table["rows"]}
    assert [row["job_id"] for row in table["rows"]] == [quadratic, linear]  # sorted by elpd, best first
    assert rows[quadratic]["elpd_loo"] > rows[linear]["elpd_loo"]
    assert table["rule"]["criterion"] == "elpd_loo" and table["rule"]["models_differ"] is True
    assert table["recommended"] == quadratic and rows[quadratic]["recommended"] and not rows[linear]["recommended"]
    assert rows[quadratic]["elpd_diff"] == 0.0
    assert rows[linear]["elpd_diff"] == pytest.approx(rows[quadratic]["elpd_loo"] - rows[linear]["elpd_loo"])
    assert rows[linear]["elpd_diff_se"] > 0 and rows[linear]["elpd_diff"] > 2 * rows[linear]["elpd_diff_se"]
    assert rows[quadratic]["loo_weight"] > rows[linear]["loo_weight"]
    for row in rows.values():
        assert row["elbo_se"] > 0 and row["elbo_draws"] == 300 and row["n_observations"] == 30
        assert row["k_hat_reading"] in ("good", "ok", "unreliable", "very bad") and row["steps"] == 400

    # The same numbers as arviz.loo on the pointwise log-likelihood the API serves.
    for job_id, row in rows.items():
        log_probs = api.client.get(f"/v1/jobs/{job_id}/log-probs", headers=tenant).json()["log_probs"]
        pointwise = np.asarray(log_probs["pointwise"]["obs"], dtype=float)
        expected = az.loo(az.from_dict(log_likelihood={"obs": pointwise[None]}), reff=1.0)
        assert row["elpd_loo"] == pytest.approx(float(expected["elpd_loo"]), rel=1e-9)
        assert row["elpd_loo_se"] == pytest.approx(float(expected["se"]), rel=1e-9)
        log_weight = np.asarray(log_probs["log_weight"], dtype=float)
        assert row["elbo"] == pytest.approx(log_weight.mean(), rel=1e-9)
        assert row["elbo_se"] == pytest.approx(log_weight.std(ddof=1) / np.sqrt(log_weight.size), rel=1e-9)

    by_elbo = api.client.get(f"/v1/compare?jobs={linear}&jobs={quadratic}&sort=steps&order=asc", headers=tenant)
    assert by_elbo.status_code == 200 and by_elbo.json()["order"] == "asc"


def test_compare_refuses_other_data_other_tenants_and_unfinished_jobs(api_sqlite: Any, tenant: dict[str, str],
                                                                      problem: Any) -> None:
    api, data = api_sqlite, _quadratic_data()
    first = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=20))
    other_data = {"x": data["x"][:10], "y": data["y"][:10]}
    second = submit(api, tenant, _body(LINEAR_SOURCE, other_data, steps=20))
    queued = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=20))
    run_jobs(api, first, second)
    problem(api.client.get(f"/v1/compare?jobs={first},{second}", headers=tenant), 422, "different-data")
    problem(api.client.get(f"/v1/compare?jobs={first},{queued}", headers=tenant), 409, "results-not-ready")
    stranger = api.tenant_headers()
    problem(api.client.get(f"/v1/compare?jobs={first}", headers=stranger), 404, "job-not-found")
    problem(api.client.get("/v1/compare?jobs=", headers=tenant), 422)
    api.client.delete(f"/v1/jobs/{queued}", headers=tenant)


def _param_values(api: Any, headers: dict[str, str], job_id: str) -> dict[str, np.ndarray]:
    body = api.client.get(f"/v1/jobs/{job_id}/params", headers=headers).json()
    params = {**body["guide_params"], **body["model_params"]}
    return {name: np.asarray(entry["value"], dtype=float) for name, entry in params.items()}


def test_continue_equals_one_longer_job(api_sqlite: Any, tenant: dict[str, str]) -> None:
    api, data = api_sqlite, _quadratic_data()
    first = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=60))
    combined = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=100))
    run_jobs(api, first, combined)

    response = api.client.post(f"/v1/jobs/{first}/continue", json={"steps": 40, "labels": {"why": "more"}},
                               headers=tenant)
    assert response.status_code == 202, response.text
    continued = response.json()
    assert continued["spec"]["inference"]["steps"] == 100
    assert continued["spec"]["inference"]["init_from"] == {"job": first, "optimizer": True}
    assert continued["labels"]["vihub/continues"] == first and continued["labels"]["why"] == "more"
    run_jobs(api, continued["id"])

    job = api.client.get(f"/v1/jobs/{continued['id']}", headers=tenant).json()
    assert job["state"] == "succeeded", job
    got, want = _param_values(api, tenant, continued["id"]), _param_values(api, tenant, combined)
    assert got.keys() == want.keys() and got
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
    loss = api.client.get(f"/v1/jobs/{continued['id']}/loss", headers=tenant).json()
    assert loss["num_points"] == 100  # the source's 60 steps, then 40 more: one curve


def test_init_from_checks_the_job_and_names_mismatched_params(api_sqlite: Any, tenant: dict[str, str],
                                                              problem: Any) -> None:
    api, data = api_sqlite, _quadratic_data()
    source = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=30))
    queued = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=30))
    body = _body(QUADRATIC_SOURCE, data, steps=5, inference={"init_from": {"job": queued}})
    problem(api.client.post("/v1/jobs", json=body, headers=tenant), 422, "invalid-warm-start")
    run_jobs(api, source, queued)
    missing = _body(LINEAR_SOURCE, data, steps=5, inference={"init_from": {"job": "0" * 8 + "-0000-4000-8000-" + "0" * 12}})
    problem(api.client.post("/v1/jobs", json=missing, headers=tenant), 422, "invalid-warm-start")

    warm = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=5, inference={"init_from": {"job": source}}))
    mismatched = submit(api, tenant, _body(QUADRATIC_SOURCE, data, steps=5, inference={"init_from": {"job": source}}))
    run_jobs(api, warm, mismatched)
    assert api.client.get(f"/v1/jobs/{warm}", headers=tenant).json()["state"] == "succeeded"
    failed = api.client.get(f"/v1/jobs/{mismatched}", headers=tenant).json()
    assert failed["state"] == "failed"
    assert failed["error"]["type"].endswith("/spec-error")
    assert "AutoNormal.locs.c" in failed["error"]["detail"] and "init_from" in failed["error"]["detail"]


def test_ppc_statistics_of_a_predictive_job(api_sqlite: Any, tenant: dict[str, str], problem: Any) -> None:
    api, data = api_sqlite, _quadratic_data()
    with_predictive = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=200,
                                                outputs={"predictive": True, "num_samples": 200}))
    without = submit(api, tenant, _body(LINEAR_SOURCE, data, steps=20))
    run_jobs(api, with_predictive, without)

    response = api.client.get(f"/v1/jobs/{with_predictive}/ppc?quantiles=0.1,0.5,0.9", headers=tenant)
    assert response.status_code == 200, response.text
    site = response.json()["sites"]["obs"]
    assert site["num_observations"] == 30 and site["num_draws"] == 200
    stats = site["statistics"]
    assert set(stats) == {"mean", "sd", "min", "max", "q10", "q50", "q90"}
    y = np.asarray(data["y"])
    assert stats["mean"]["observed"] == pytest.approx(y.mean(), rel=1e-5)
    assert stats["max"]["observed"] == pytest.approx(y.max(), rel=1e-5)
    assert all(0.0 <= s["p_value"] <= 1.0 for s in stats.values())
    # A straight line (with the model's noise of 0.5) cannot make the data's curvature:
    # the data's minimum (at the vertex) is far below every replicated minimum.
    assert stats["min"]["p_value"] > 0.99
    assert 0.05 < stats["mean"]["p_value"] < 0.95  # the mean, the fit does reproduce
    assert sum(site["histogram"]["observed"]) == 30
    problem(api.client.get(f"/v1/jobs/{without}/ppc", headers=tenant), 409, "no-predictive")
    problem(api.client.get(f"/v1/jobs/{with_predictive}/ppc?quantiles=2", headers=tenant), 422)


def _sweep_body(**extra: Any) -> dict[str, Any]:
    body = {
        "name": "guides",
        "base": _body(LINEAR_SOURCE, _quadratic_data(), steps=150),
        "axes": {"guide.auto": ["AutoNormal", "AutoMultivariateNormal"], "inference.optimizer.lr": [0.05]},
        "labels": {"team": "a"},
    }
    body.update(extra)
    return body


def test_sweep_lifecycle(api_sqlite: Any, tenant: dict[str, str], problem: Any) -> None:
    api = api_sqlite
    response = api.client.post("/v1/sweeps", json=_sweep_body(), headers={**tenant, "Idempotency-Key": "s-1"})
    assert response.status_code == 202, response.text
    sweep = response.json()
    assert sweep["state"] == "queued" and sweep["counts"]["queued"] == 2 and not sweep["done"]
    members = sweep["members"]
    assert [m["point"] for m in members] == [{"guide.auto": "AutoNormal", "inference.optimizer.lr": 0.05},
                                            {"guide.auto": "AutoMultivariateNormal", "inference.optimizer.lr": 0.05}]
    assert members[1]["job"]["spec"]["guide"]["auto"] == "AutoMultivariateNormal"
    assert members[0]["job"]["labels"] == {"team": "a", "vihub/sweep": sweep["id"], "vihub/sweep-point": "0"}
    assert set(api.published_job_ids()) >= {m["job"]["id"] for m in members}
    # The members are normal jobs: listed by their label.
    listed = api.client.get(f"/v1/jobs?label=vihub/sweep={sweep['id']}", headers=tenant).json()["items"]
    assert {j["id"] for j in listed} == {m["job"]["id"] for m in members}

    replay = api.client.post("/v1/sweeps", json=_sweep_body(), headers={**tenant, "Idempotency-Key": "s-1"})
    assert replay.status_code == 200 and replay.json()["id"] == sweep["id"]
    problem(api.client.post("/v1/sweeps", json=_sweep_body(name="other"), headers={**tenant, "Idempotency-Key": "s-1"}),
            409, "idempotency-key-reused")
    problem(api.client.get(f"/v1/sweeps/{sweep['id']}/comparison", headers=tenant), 409, "results-not-ready")

    run_jobs(api, *(m["job"]["id"] for m in members))
    done = api.client.get(f"/v1/sweeps/{sweep['id']}", headers=tenant).json()
    assert done["done"] and done["state"] == "finished" and done["counts"]["succeeded"] == 2
    assert done["progress"] == pytest.approx(1.0)
    table = api.client.get(f"/v1/sweeps/{sweep['id']}/comparison", headers=tenant).json()
    assert len(table["rows"]) == 2 and table["rule"]["criterion"] == "elbo"
    assert {row["guide"] for row in table["rows"]} == {"AutoNormal", "AutoMultivariateNormal"}
    assert all(row["point"] is not None for row in table["rows"])
    best = max((r for r in table["rows"] if r["trusted"]), key=lambda r: r["elbo"], default=None)
    assert best is None or table["recommended"] == best["job_id"]
    assert sweep["id"] in {s["id"] for s in api.client.get("/v1/sweeps", headers=tenant).json()["items"]}
    problem(api.client.get(f"/v1/sweeps/{sweep['id']}", headers=api.tenant_headers()), 404, "sweep-not-found")

    assert api.client.delete(f"/v1/sweeps/{sweep['id']}", headers=tenant).status_code == 204
    problem(api.client.get(f"/v1/sweeps/{sweep['id']}", headers=tenant), 404, "sweep-not-found")
    for member in members:
        problem(api.client.get(f"/v1/jobs/{member['job']['id']}", headers=tenant), 404, "job-not-found")


def test_sweep_list_is_summaries_paged_like_jobs(api: Any, problem: Any) -> None:
    """The list renders no member job (it was GBs for 100 big sweeps); its numbers are the
    ones GET of each sweep shows, with each member's steps read from the stored spec."""
    headers = api.tenant_headers()
    mixed = api.client.post("/v1/sweeps", json=_sweep_body(
        points=[{"inference.steps": 100}, {"inference.steps": 300}], axes=None), headers=headers).json()
    api.client.post(f"/v1/jobs/{mixed['members'][0]['job']['id']}/cancel", headers=headers)
    newest = api.client.post("/v1/sweeps", json=_sweep_body(name="newest"), headers=headers).json()

    response = api.client.get("/v1/sweeps", headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [s["id"] for s in items] == [newest["id"], mixed["id"]]
    for item in items:
        assert not {"members", "base", "axes"} & set(item)
        full = api.client.get(item["links"]["self"], headers=headers).json()
        assert item["member_count"] == len(full["members"]) == 2
        for key in ("name", "state", "done", "counts", "progress", "labels", "links"):
            assert item[key] == full[key], key
    # One of 100 + 300 steps is final (cancelled): a quarter of the steps are done.
    assert items[1]["progress"] == pytest.approx(0.25) and items[1]["counts"]["cancelled"] == 1
    assert items[0]["state"] == "queued" and items[0]["progress"] == 0.0

    for query in ("page_size=1", "limit=1"):  # limit: the deprecated name, as for jobs
        assert [s["id"] for s in api.client.get(f"/v1/sweeps?{query}", headers=headers).json()["items"]] == \
            [newest["id"]]
    problem(api.client.get("/v1/sweeps?page_sise=1", headers=headers), 400, "unknown-query-parameter")
    problem(api.client.get("/v1/sweeps?page_size=0", headers=headers), 422)


def test_sweep_cancel_cascades_and_limits(api_sqlite: Any, tenant: dict[str, str], problem: Any,
                                          quotas: dict[str, int]) -> None:
    api = api_sqlite
    sweep = api.client.post("/v1/sweeps", json=_sweep_body(points=[{"inference.seed": 1}, {"inference.seed": 2}],
                                                           axes=None), headers=tenant).json()
    cancelled = api.client.post(f"/v1/sweeps/{sweep['id']}/cancel", headers=tenant).json()
    assert cancelled["state"] == "cancelled" and cancelled["counts"]["cancelled"] == 2
    for member in cancelled["members"]:
        assert member["job"]["state"] == "cancelled"

    # A grid bigger than the free concurrent-job slots is refused whole (nothing queued).
    grid = {"guide.auto": ["AutoNormal", "AutoDiagonalNormal"], "inference.seed": [1, 2]}
    assert 4 > quotas["max_concurrent_jobs"]
    problem(api.client.post("/v1/sweeps", json=_sweep_body(axes=grid), headers=tenant), 429, "too-many-concurrent-jobs")
    assert api.client.get("/v1/jobs?state=queued", headers=tenant).json()["items"] == []
    # Too many points for the quota, a field that is not a spec field, an invalid point.
    many = [{"inference.seed": i} for i in range(65)]
    problem(api.client.post("/v1/sweeps", json=_sweep_body(points=many, axes=None), headers=tenant), 403,
            "quota-exceeded")
    huge = {"inference.seed": list(range(1000)), "inference.steps": list(range(1, 1001)),
            "outputs.num_samples": list(range(1, 1001))}  # 1e9 points: refused before they are expanded
    body = problem(api.client.post("/v1/sweeps", json=_sweep_body(axes=huge), headers=tenant), 403, "quota-exceeded")
    assert "1000000000 points" in body["detail"]
    problem(api.client.post("/v1/sweeps", json=_sweep_body(axes={"data.inline": [1]}), headers=tenant), 422)
    bad = problem(api.client.post("/v1/sweeps", json=_sweep_body(axes={"guide.auto": ["NoSuchGuide"]}),
                                  headers=tenant), 422)
    assert bad["point"] == 0
    problem(api.client.post("/v1/sweeps", json=_sweep_body(points=[{"inference.seed": 1}]), headers=tenant), 422)
