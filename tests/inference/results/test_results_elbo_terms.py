"""The per-site ELBO decomposition adds up exactly and agrees with Pyro's ELBO estimates."""

from __future__ import annotations

import math
import warnings

import pyro
import pytest
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDiagonalNormal, AutoNormal
from results_models import (
    EIGHT,
    conjugate_data,
    conjugate_guide,
    conjugate_log_evidence,
    conjugate_model,
    eight_schools,
    gmm,
    gmm_data,
    gmm_fixed_guide,
    gmm_log_marginal,
    mc_tolerance,
    train,
)

from inference.results import estimate_elbo_terms, trace_log_probs

NUM = 3000


def _total(terms):
    return math.fsum(list(terms["reconstruction"].values()) + list(terms["kl"].values()))


@pytest.mark.parametrize("guide_class", [AutoNormal, AutoDiagonalNormal], ids=lambda c: c.__name__)
def test_terms_sum_to_the_elbo_and_match_trace_elbo(guide_class):
    pyro.clear_param_store()
    guide = guide_class(eight_schools)
    train(eight_schools, guide, EIGHT, steps=30)
    pyro.set_rng_seed(1)
    terms = estimate_elbo_terms(eight_schools, guide, EIGHT, num_particles=NUM)
    assert terms["elbo"] == _total(terms)  # exactly: same particles, same sum
    assert set(terms["reconstruction"]) == {"obs"}
    expected_kl = {"mu", "tau", "theta_tilde"} | ({"[guide joint]"} if guide_class is AutoDiagonalNormal else set())
    assert set(terms["kl"]) == expected_kl
    weights = trace_log_probs(eight_schools, guide, EIGHT, 500)["log_weight"]
    reference = -Trace_ELBO(num_particles=NUM, vectorize_particles=True, max_plate_nesting=1).loss(
        eight_schools, guide, **EIGHT
    )
    assert terms["elbo"] == pytest.approx(reference, abs=mc_tolerance(weights, NUM))
    pyro.clear_param_store()


def test_exact_guide_elbo_is_the_log_evidence_and_analytic_kl_agrees():
    data = conjugate_data()
    guide = conjugate_guide()
    evidence = conjugate_log_evidence(data["y"])
    mc = estimate_elbo_terms(conjugate_model, guide, data, num_particles=200)
    assert mc["elbo"] == pytest.approx(evidence, abs=1e-3)  # zero-variance at the exact posterior
    analytic = estimate_elbo_terms(conjugate_model, guide, data, num_particles=2000, analytic_kl=True)
    assert analytic["analytic"] == ["mu"]
    assert analytic["elbo"] == _total(analytic)
    # KL(q || prior) in closed form: Normal vs Normal.
    from results_models import PRIOR_SD, conjugate_posterior

    mean, sd = conjugate_posterior(data["y"])
    kl = math.log(PRIOR_SD / sd) + (sd**2 + mean**2) / (2 * PRIOR_SD**2) - 0.5
    assert analytic["kl"]["mu"] == pytest.approx(-kl, rel=1e-5)
    assert analytic["elbo"] == pytest.approx(evidence, abs=0.1)


def test_analytic_kl_applies_to_unconstrained_autonormal_sites_only():
    pyro.clear_param_store()
    guide = AutoNormal(eight_schools)
    train(eight_schools, guide, EIGHT, steps=10)
    pyro.set_rng_seed(3)
    terms = estimate_elbo_terms(eight_schools, guide, EIGHT, num_particles=500, analytic_kl=True)
    # tau is HalfCauchy (constrained): its Jacobian term needs the Monte Carlo estimate.
    assert terms["analytic"] == ["mu", "theta_tilde"]
    assert terms["elbo"] == _total(terms)
    weights = trace_log_probs(eight_schools, guide, EIGHT, 300)["log_weight"]
    reference = -Trace_ELBO(num_particles=NUM, vectorize_particles=True, max_plate_nesting=1).loss(
        eight_schools, guide, **EIGHT
    )
    assert terms["elbo"] == pytest.approx(reference, abs=mc_tolerance(weights, 500))
    pyro.clear_param_store()


def test_enumerated_mixture_terms_match_trace_enum_elbo():
    data = gmm_data()
    guide = gmm_fixed_guide(weights=(0.4, 0.6), locs=(-2.5, 3.2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        terms = estimate_elbo_terms(gmm, guide, data, num_particles=3)
        reference = -TraceEnum_ELBO(max_plate_nesting=1).loss(gmm, guide, **data)
    assert terms["elbo"] == _total(terms)
    assert terms["elbo"] == pytest.approx(reference, rel=1e-5)
    assert terms["elbo"] == pytest.approx(gmm_log_marginal(data["x"], (0.4, 0.6), (-2.5, 3.2)), rel=1e-5)
    assert set(terms["reconstruction"]) == {"x"}  # log p(x | globals) with assignments summed out
    assert set(terms["kl"]) == {"weights", "locs"}


def test_guide_messenger_terms_and_params():
    from pyro.infer.autoguide import AutoNormalMessenger

    from inference.results import draw_posterior, split_params

    pyro.clear_param_store()
    data = conjugate_data()
    guide = AutoNormalMessenger(conjugate_model)
    train(conjugate_model, guide, data, steps=20, lr=0.02)
    guide_params, model_params = split_params(conjugate_model, guide, data)
    assert set(guide_params) == {"locs.mu", "scales.mu"} and model_params == {}
    pyro.set_rng_seed(2)
    terms = estimate_elbo_terms(conjugate_model, guide, data, num_particles=NUM)
    assert terms["elbo"] == _total(terms) and set(terms["kl"]) == {"mu"}
    log_probs = trace_log_probs(conjugate_model, guide, data, 300)
    assert set(log_probs["guide_sites"]) == {"mu"}  # the observed site is not in log q
    reference = -Trace_ELBO(num_particles=NUM, vectorize_particles=True, max_plate_nesting=1).loss(
        conjugate_model, guide, **data
    )
    assert terms["elbo"] == pytest.approx(reference, abs=mc_tolerance(log_probs["log_weight"], NUM))
    samples, predictive = draw_posterior(conjugate_model, guide, data, 20, predictive=True)
    assert samples["mu"].shape == (20,) and predictive["obs"].shape == (20, 20)
    pyro.clear_param_store()


def test_a_site_layout_traces_the_sites_once_and_gives_the_same_estimate(monkeypatch):
    """The estimate made every ``elbo_terms_every`` steps of a fit shares one SiteLayout:
    the roles trace and the vectorisation check happen on its first call only, and the
    estimate is the same as a one-off call's (same terms, agreeing within MC error)."""
    from inference.results import log_probs
    from inference.results.log_probs import SiteLayout

    pyro.clear_param_store()
    guide = AutoNormal(eight_schools)
    train(eight_schools, guide, EIGHT, steps=30)
    plain_runs, checks = [], []
    traced, check = log_probs.traced_pair, log_probs.check_vectorised_draw
    monkeypatch.setattr(log_probs, "traced_pair",
                        lambda *a, **k: (plain_runs.append(k.get("num")), traced(*a, **k))[1])
    monkeypatch.setattr(log_probs, "check_vectorised_draw", lambda *a, **k: (checks.append(1), check(*a, **k))[1])
    layout = SiteLayout()
    shared = [estimate_elbo_terms(eight_schools, guide, EIGHT, num_particles=NUM, layout=layout) for _ in range(3)]
    assert plain_runs.count(None) == 1 and len(checks) == 1  # roles and check once, not per call
    assert plain_runs.count(NUM) == 3  # one vectorised block of draws per call
    plain_runs.clear()
    one_off = estimate_elbo_terms(eight_schools, guide, EIGHT, num_particles=NUM)
    assert plain_runs.count(None) == 1
    weights = trace_log_probs(eight_schools, guide, EIGHT, 500)["log_weight"]
    for terms in shared:
        assert set(terms["kl"]) == set(one_off["kl"]) and set(terms["reconstruction"]) == {"obs"}
        assert terms["elbo"] == _total(terms)
        assert terms["elbo"] == pytest.approx(one_off["elbo"], abs=2 * mc_tolerance(weights, NUM))
    pyro.clear_param_store()
