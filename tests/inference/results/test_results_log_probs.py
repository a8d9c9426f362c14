"""Trace log-probs against Pyro's own log_prob_sum, and the k-hat verdicts on real guides."""

from __future__ import annotations

import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoNormal
from results_models import (
    EIGHT,
    conjugate_data,
    conjugate_guide,
    conjugate_model,
    eight_schools,
    gmm,
    gmm_data,
    gmm_fixed_guide,
    gmm_log_marginal,
    gmm_pointwise,
    train,
)

from inference.results import importance_diagnostics, pareto_khat, trace_log_probs


def _guide_trace_at(guide, draw, kwargs):
    """A fresh guide trace at the given values of its sample sites (replayed, not observed)."""
    template = poutine.trace(guide).get_trace(**kwargs)
    for name, value in draw.items():
        template.nodes[name]["value"] = value
    return poutine.trace(poutine.replay(guide, trace=template)).get_trace(**kwargs)


@pytest.fixture(params=[AutoNormal, AutoDiagonalNormal], ids=lambda c: c.__name__)
def trained_eight(request):
    pyro.clear_param_store()
    guide = request.param(eight_schools)
    train(eight_schools, guide, EIGHT, steps=30)
    yield guide
    pyro.clear_param_store()


@pytest.mark.parametrize("parallel", [None, False], ids=["vectorised", "loop"])
def test_log_probs_reproduce_direct_log_prob_sum(trained_eight, parallel):
    guide = trained_eight
    pyro.set_rng_seed(0)
    num = 40 if parallel is None else 5
    lp = trace_log_probs(eight_schools, guide, EIGHT, num, return_draws=True, parallel=parallel)
    assert lp["log_joint"].shape == (num,) and not lp["enumerated"]
    # Per-site terms add up to the joint and to log q.
    np.testing.assert_allclose(sum(lp["model_sites"].values()), lp["log_joint"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(sum(lp["guide_sites"].values()), lp["log_q"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(lp["log_weight"], lp["log_joint"] - lp["log_q"], atol=1e-5)
    assert set(lp["model_sites"]) == {"mu", "tau", "theta_tilde", "obs"}  # no deterministic site
    assert lp["pointwise"]["obs"].shape == (num, 8)
    np.testing.assert_allclose(lp["pointwise"]["obs"].sum(-1), lp["model_sites"]["obs"], rtol=1e-5, atol=1e-4)
    if isinstance(guide, AutoDiagonalNormal):
        assert "[guide joint]" in lp["guide_sites"]  # the joint latent's log q
    else:
        assert set(lp["guide_sites"]) == {"mu", "tau", "theta_tilde"}  # aux sites folded in
    # Each draw, recomputed directly: guide conditioned on its own values, model replayed.
    for i in range(min(num, 6)):
        draw = {name: torch.as_tensor(value[i]) for name, value in lp["draws"].items()}
        guide_trace = _guide_trace_at(guide, draw, EIGHT)
        model_trace = poutine.trace(poutine.replay(eight_schools, trace=guide_trace)).get_trace(**EIGHT)
        assert lp["log_joint"][i] == pytest.approx(float(model_trace.log_prob_sum().detach()), rel=1e-5, abs=1e-3)
        assert lp["log_q"][i] == pytest.approx(float(guide_trace.log_prob_sum().detach()), rel=1e-5, abs=1e-3)


def test_log_probs_of_a_point_mass_guide_equal_log_prob_sum():
    pyro.clear_param_store()
    guide = AutoDelta(eight_schools)
    train(eight_schools, guide, EIGHT, steps=20)
    model_trace = poutine.trace(poutine.replay(eight_schools, trace=poutine.trace(guide).get_trace(**EIGHT)))
    expected = float(model_trace.get_trace(**EIGHT).log_prob_sum().detach())
    for parallel in (None, False):
        lp = trace_log_probs(eight_schools, guide, EIGHT, 4, parallel=parallel)
        np.testing.assert_allclose(lp["log_joint"], expected, rtol=1e-5)
        np.testing.assert_allclose(lp["log_q"], 0.0)
    assert lp["point_mass_guide"] is True
    pyro.clear_param_store()


def test_scaled_model_log_probs_include_the_scale():
    data = conjugate_data()
    scaled = poutine.scale(conjugate_model, scale=0.25)
    guide = conjugate_guide()
    lp = trace_log_probs(scaled, guide, data, 3, return_draws=True)
    draw = {"mu": torch.as_tensor(lp["draws"]["mu"][0])}
    guide_trace = _guide_trace_at(guide, draw, data)
    direct = poutine.trace(poutine.replay(scaled, trace=guide_trace)).get_trace(**data).log_prob_sum()
    assert lp["log_joint"][0] == pytest.approx(float(direct), rel=1e-5)
    # pointwise stays unscaled (a per-point log-likelihood for LOO)
    assert lp["pointwise"]["obs"][0].sum() == pytest.approx(4 * lp["model_sites"]["obs"][0], rel=1e-5)


def test_enumerated_mixture_log_joint_is_the_exact_marginal():
    data = gmm_data()
    guide = gmm_fixed_guide(weights=(0.4, 0.6), locs=(-2.5, 3.2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lp = trace_log_probs(gmm, guide, data, 3, sample_discrete=True)
        marginal = trace_log_probs(gmm, guide, data, 2)
    # default: the sites that depend on the assignments are reported marginalised, together
    assert set(marginal["model_sites"]) == {"weights", "locs", "x"}
    np.testing.assert_allclose(sum(marginal["model_sites"].values()), marginal["log_joint"], rtol=1e-6)
    assert lp["enumerated"] is True
    expected = gmm_log_marginal(data["x"], (0.4, 0.6), (-2.5, 3.2))
    np.testing.assert_allclose(lp["log_joint"], expected, rtol=1e-5)
    np.testing.assert_allclose(lp["log_q"], 0.0)
    # per-point marginals (assignments summed out) for LOO
    np.testing.assert_allclose(lp["pointwise"]["x"][0], gmm_pointwise(data["x"], (0.4, 0.6), (-2.5, 3.2)), rtol=1e-5)
    # model_sites are at a posterior draw of the assignments: their sum is log p(x, z, a),
    # below the marginal by log p(a | x, z) <= 0.
    joint_with_assignments = sum(lp["model_sites"].values())
    np.testing.assert_allclose(joint_with_assignments - lp["log_joint"], lp["log_p_discrete_given_rest"], atol=1e-4)
    assert np.all(lp["log_p_discrete_given_rest"] <= 1e-5)
    assert set(lp["model_sites"]) == {"weights", "locs", "assignment", "x"}


def test_khat_flags_autodelta_on_eight_schools():
    pyro.clear_param_store()
    guide = AutoDelta(eight_schools)
    train(eight_schools, guide, EIGHT, steps=30)
    lp = trace_log_probs(eight_schools, guide, EIGHT, 200)
    assert pareto_khat(lp["log_weight"]) >= 0.7  # equal weights: nothing to fit -> inf
    report = importance_diagnostics(lp["log_weight"], point_mass_guide=lp["point_mass_guide"])
    assert report["k_hat"] >= 0.7 and report["k_hat_reading"] in ("unreliable", "very bad")
    pyro.clear_param_store()


def test_khat_flags_a_too_narrow_guide_and_passes_good_ones():
    data = conjugate_data()
    pyro.set_rng_seed(0)
    narrow = trace_log_probs(conjugate_model, conjugate_guide(0.4), data, 2000)
    assert pareto_khat(narrow["log_weight"]) >= 0.7
    exact = trace_log_probs(conjugate_model, conjugate_guide(1.0), data, 1000)
    # exact posterior: log weights are the log evidence up to float rounding
    assert np.ptp(exact["log_weight"]) < 1e-3
    assert importance_diagnostics(exact["log_weight"])["k_hat"] < 0.5
    wider = trace_log_probs(conjugate_model, conjugate_guide(1.2), data, 1000)
    assert importance_diagnostics(wider["log_weight"])["k_hat_reading"] == "good"


def test_a_model_that_batches_wrongly_falls_back_to_one_draw_at_a_time():
    from results_models import batch_unsafe, batch_unsafe_guide

    data = {"x": torch.linspace(0, 1, 6), "y": torch.linspace(0, 1, 6)}
    with pytest.warns(UserWarning, match="one draw at a time"):
        lp = trace_log_probs(batch_unsafe, batch_unsafe_guide, data, 5, return_draws=True)
    assert any("one at a time" in note for note in lp["notes"])
    for i in range(5):
        guide_trace = _guide_trace_at(batch_unsafe_guide, {"w": torch.as_tensor(lp["draws"]["w"][i])}, data)
        model_trace = poutine.trace(poutine.replay(batch_unsafe, trace=guide_trace)).get_trace(**data)
        assert lp["log_joint"][i] == pytest.approx(float(model_trace.log_prob_sum()), rel=1e-5)


def test_chained_enumeration_log_joint_matches_trace_enum_elbo():
    from pyro.infer import TraceEnum_ELBO
    from results_models import hmm, hmm_data, hmm_fixed_guide

    data = hmm_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lp = trace_log_probs(hmm, hmm_fixed_guide, data, 2, sample_discrete=True)
        marginal = trace_log_probs(hmm, hmm_fixed_guide, data, 1)
        expected = -TraceEnum_ELBO(max_plate_nesting=1).loss(hmm, hmm_fixed_guide, **data)
    np.testing.assert_allclose(lp["log_joint"], expected, rtol=1e-5)
    np.testing.assert_allclose(marginal["log_joint"], expected, rtol=1e-5)
    assert set(marginal["model_sites"]) == {"probs", "locs", "+".join(f"y_{t}" for t in range(5))}
    assert lp["pointwise"] == {}  # chained states: per-point marginals do not factorise
    assert any("pointwise" in note for note in lp["notes"])
    assert {f"state_{t}" for t in range(5)} <= set(lp["model_sites"])


def test_a_model_without_latents_is_not_judged_by_khat():
    import pyro.distributions as dist

    def model(y):
        loc = pyro.param("loc", torch.tensor(0.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("obs", dist.Normal(loc, 1.0), obs=y)

    def guide(y):
        pass

    lp = trace_log_probs(model, guide, {"y": torch.zeros(4)}, 3)
    assert lp["has_latents"] is False and set(lp["model_sites"]) == {"obs"}
    report = importance_diagnostics(lp["log_weight"], has_latents=lp["has_latents"])
    assert report["k_hat_reading"] == "not applicable"
    with pytest.raises(ValueError):
        trace_log_probs(model, guide, {"y": torch.zeros(4)}, 0)
