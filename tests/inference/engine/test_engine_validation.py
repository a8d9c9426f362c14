"""The validation pass: broken model/guide pairs get plain messages naming the site."""

import torch
import pyro
import pyro.distributions as dist
from pyro.infer.autoguide import AutoDelta, AutoNormal

from engine_models import EIGHT_SCHOOLS, eight_schools, gmm, gmm_data
from inference.engine.errors import ValidationFailed
from inference.engine.validation import run_validation
from inference.spec import ElboSpec


def codes(report):
    return {(m.code, m.site) for m in report.errors}


def test_a_good_pair_is_ok_and_validation_is_restored():
    from pyro.infer.util import is_validation_enabled

    pyro.enable_validation(False)
    report = run_validation(eight_schools, lambda: AutoNormal(eight_schools), EIGHT_SCHOOLS, ElboSpec())
    assert report.ok and report.errors == []
    assert report.info["max_plate_nesting"] == 1
    assert report.info["latent_sites"] == ["mu", "tau", "theta_tilde"]
    assert report.info["observed_sites"] == ["obs"]
    assert not is_validation_enabled()
    pyro.enable_validation(True)


def _guide_missing_tau(J, sigma, y=None):
    pyro.sample("mu", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))
    with pyro.plate("schools", J):
        pyro.sample("theta_tilde", dist.Normal(0.0, 1.0))


def test_latent_missing_from_guide():
    report = run_validation(eight_schools, lambda: _guide_missing_tau, EIGHT_SCHOOLS, ElboSpec())
    assert ("missing_in_guide", "tau") in codes(report)
    assert "latent site 'tau'" in report.errors[0].message


def _guide_extra_site(J, sigma, y=None):
    _guide_missing_tau(J, sigma, y)
    pyro.sample("tau", dist.LogNormal(0.0, 1.0))
    pyro.sample("tau_typo", dist.Normal(0.0, 1.0))


def test_guide_site_absent_from_model():
    report = run_validation(eight_schools, lambda: _guide_extra_site, EIGHT_SCHOOLS, ElboSpec())
    assert ("not_in_model", "tau_typo") in codes(report)


def _guide_wrong_support(J, sigma, y=None):
    _guide_missing_tau(J, sigma, y)
    pyro.sample("tau", dist.Normal(1.0, 1.0))


def test_support_mismatch():
    report = run_validation(eight_schools, lambda: _guide_wrong_support, EIGHT_SCHOOLS, ElboSpec())
    assert ("support_mismatch", "tau") in codes(report)
    msg = next(m.message for m in report.errors if m.code == "support_mismatch")
    assert "positive" in msg


def _guide_wrong_shape(J, sigma, y=None):
    pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.sample("tau", dist.LogNormal(0.0, 1.0))
    pyro.sample("theta_tilde", dist.Normal(torch.zeros(3), 1.0).to_event(1))


def test_shape_and_event_dim_mismatch():
    report = run_validation(eight_schools, lambda: _guide_wrong_shape, EIGHT_SCHOOLS, ElboSpec())
    assert ("shape_mismatch", "theta_tilde") in codes(report)
    assert any(w.code == "event_dim_mismatch" and w.site == "theta_tilde" for w in report.warnings)


def test_enumeration_without_trace_enum():
    report = run_validation(gmm, lambda: AutoDelta(pyro.poutine.block(gmm, expose=["weights", "locs", "scale"])),
                            gmm_data(), ElboSpec(name="Trace_ELBO"))
    assert ("enumeration_needs_trace_enum", "assignment") in codes(report)


def test_enumeration_with_trace_enum_is_fine_and_nesting_is_checked():
    guide = lambda: AutoDelta(pyro.poutine.block(gmm, expose=["weights", "locs", "scale"]))  # noqa: E731
    ok = run_validation(gmm, guide, gmm_data(), ElboSpec(name="TraceEnum_ELBO"))
    assert ok.ok, ok.errors
    too_small = run_validation(gmm, guide, gmm_data(), ElboSpec(name="TraceEnum_ELBO", max_plate_nesting=0))
    assert ("max_plate_nesting_too_small", None) in codes(too_small)


def test_discrete_latent_under_a_continuous_autoguide():
    def model(y):
        z = pyro.sample("z", dist.Bernoulli(0.5))
        pyro.sample("obs", dist.Normal(z, 1.0), obs=y)

    report = run_validation(model, lambda: AutoNormal(model), {"y": torch.tensor(0.3)}, ElboSpec())
    assert ("discrete_latent_in_continuous_guide", "z") in codes(report)


def test_model_that_crashes_is_reported_not_raised():
    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(mu, torch.ones(3)), obs=y)  # 3 vs 5: shape error

    report = run_validation(model, lambda: AutoNormal(model), {"y": torch.zeros(5)}, ElboSpec())
    (error,) = report.errors
    assert error.code == "model_error" and error.site == "obs"
    assert "log-density" in error.message and "[5]" in error.message


def test_pyro_validation_errors_are_reworded():
    # A model whose observed value lies outside the likelihood's support: Pyro's validation
    # catches it; we report it with the site name.
    def model(y):
        rate = pyro.sample("rate", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", y.shape[0]):
            pyro.sample("obs", dist.Poisson(rate), obs=y)

    report = run_validation(model, lambda: AutoNormal(model), {"y": torch.tensor([1.0, -2.0])}, ElboSpec())
    assert not report.ok
    assert any(m.site == "obs" for m in report.errors), report.errors


def test_validation_failed_carries_the_report():
    report = run_validation(eight_schools, lambda: _guide_missing_tau, EIGHT_SCHOOLS, ElboSpec())
    err = ValidationFailed(report)
    assert err.kind == "validation-failed" and err.report is report
    assert "tau" in err.message and err.to_dict()["report"]["ok"] is False
