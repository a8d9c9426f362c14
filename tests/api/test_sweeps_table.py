"""The comparison table's numbers and recommendation rule, and the PPC statistics, as pure
functions (no server): ``api.compare.table`` and ``api.compare.ppc``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from api.compare.ppc import ppc, statistics
from api.compare.table import Member, comparison, elbo_estimate


def _member(job_id: str, *, model: str = "m", elbo_mean: float = -10.0, k_hat: float | None = 0.3,
            reading: str = "good", pointwise_shift: float | None = 0.0, seed: int = 0, n_obs: int = 12) -> Member:
    rng = np.random.default_rng(seed)
    log_probs = {"log_weight": (elbo_mean + rng.normal(0.0, 1.0, 400)).tolist()}
    if pointwise_shift is not None:
        log_probs["pointwise"] = {"obs": (rng.normal(-1.0 + pointwise_shift, 0.05, (400, n_obs))).tolist()}
    result = {"log_probs": log_probs, "diagnostics": {"k_hat": k_hat, "k_hat_reading": reading, "converged": True},
              "meta": {"steps_done": 100, "wall_s": 1.5}}
    spec = {"model": {"catalog": model}, "guide": {"auto": "AutoNormal"}, "inference": {"optimizer": {"lr": 0.01}}}
    return Member(job_id=job_id, spec=spec, result=result)


def test_elbo_estimate_is_the_mean_of_finite_log_weights_with_its_standard_error() -> None:
    mean, se, n = elbo_estimate([1.0, 2.0, 3.0, float("nan"), None])
    assert (mean, n) == (2.0, 3) and se == pytest.approx(1.0 / math.sqrt(3))
    assert elbo_estimate([]) == (None, None, 0)


def test_same_model_recommends_the_highest_elbo_among_trusted_fits() -> None:
    table = comparison([_member("a", elbo_mean=-10.0), _member("b", elbo_mean=-5.0, k_hat=0.9, reading="unreliable"),
                        _member("c", elbo_mean=-8.0)])
    assert table["rule"]["criterion"] == "elbo" and table["recommended"] == "c"  # b is higher but untrusted
    rows = {r["job_id"]: r for r in table["rows"]}
    assert rows["b"]["trusted"] is False and rows["c"]["recommended"] and not rows["b"]["recommended"]
    assert [r["job_id"] for r in table["rows"]] == ["b", "c", "a"]  # sorted by ELBO, descending


def test_no_trusted_fit_still_recommends_with_a_note() -> None:
    table = comparison([_member("a", k_hat=None, reading="very bad", elbo_mean=-3.0),
                        _member("b", k_hat=1.2, reading="very bad")])
    assert table["recommended"] == "a"
    assert any("no fit has k-hat <= 0.7" in note for note in table["notes"])


def test_different_models_recommend_by_loo_and_fall_back_to_elbo_without_it() -> None:
    better = _member("better", model="quadratic", elbo_mean=-20.0, pointwise_shift=0.5, seed=1)
    worse = _member("worse", model="linear", elbo_mean=-5.0, pointwise_shift=0.0, seed=2)
    table = comparison([worse, better], sort="elpd_loo")
    assert table["rule"]["criterion"] == "elpd_loo" and table["recommended"] == "better"
    rows = {r["job_id"]: r for r in table["rows"]}
    assert rows["worse"]["elpd_diff"] == pytest.approx(rows["better"]["elpd_loo"] - rows["worse"]["elpd_loo"])
    no_loo = comparison([_member("x", model="a", pointwise_shift=None, elbo_mean=-1.0),
                         _member("y", model="b", pointwise_shift=None, elbo_mean=-2.0)])
    assert no_loo["rule"]["criterion"] == "elbo" and no_loo["recommended"] == "x"
    assert any("LOO is not available" in note for note in no_loo["notes"])


def test_different_numbers_of_observations_get_no_loo_and_nan_is_never_rendered() -> None:
    table = comparison([_member("a", n_obs=12), _member("b", n_obs=10)])
    assert all(r["elpd_loo"] is None for r in table["rows"])
    assert any("different numbers of observations" in note for note in table["notes"])
    broken = _member("nan")
    broken.result["log_probs"]["pointwise"]["obs"][0][0] = float("nan")
    table = comparison([broken, _member("ok", seed=3)])
    for row in table["rows"]:
        assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in row.values())


def test_ppc_statistics_and_bayesian_p_values() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    y_rep = np.stack([y + shift for shift in range(-5, 6)])  # symmetric around y, exact sds
    stats = statistics(y, y_rep, quantiles=(0.5,))["statistics"]
    assert stats["mean"]["observed"] == 1.5 and stats["mean"]["p_value"] == pytest.approx(0.5)
    assert stats["sd"]["p_value"] == pytest.approx(0.5)  # every draw has the same sd: ties count half
    assert stats["max"]["replicated"]["mean"] == pytest.approx(3.0)
    shifted = statistics(y, y_rep + 10.0)["statistics"]
    assert shifted["mean"]["p_value"] == 1.0 and shifted["min"]["p_value"] == 1.0
    out = ppc({"obs": y, "other": y}, {"obs": y_rep.tolist()})
    assert set(out["sites"]) == {"obs"} and "no replicated draws" in out["notes"][0]
    bad = ppc({"obs": np.array([np.nan, 1.0, 2.0, 3.0])}, {"obs": y_rep})
    assert bad["sites"] == {} and "not all finite" in bad["notes"][0]
