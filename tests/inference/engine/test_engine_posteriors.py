"""Closed-form posteriors: the engine's fits match them (issue #3, "Done when")."""

import math

import torch
import pyro
from pyro.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal

from engine_models import (
    COIN, COIN_POSTERIOR, coin, gmm, gmm_data, linreg, linreg_data, linreg_posterior,
    normal_mean, normal_mean_data, normal_mean_posterior, spec,
)
from inference.engine.guides import build_guide
from inference.engine.loop import run_svi
from inference.spec import AutoGuideSpec, ElboSpec, InferenceSpec, OptimizerSpec


def test_normal_normal_mean_autonormal():
    data = normal_mean_data()
    mean, sd = normal_mean_posterior(data["y"])
    run_svi(normal_mean, AutoNormal(normal_mean), data,
            spec(steps=400, lr=0.05, particles=4, vectorize=True, decay_to=0.05))
    loc, scale = pyro.param("AutoNormal.locs.mu").item(), pyro.param("AutoNormal.scales.mu").item()
    assert abs(loc - mean) < 0.1 * sd
    assert abs(scale / sd - 1) < 0.10


def test_bayesian_linear_regression_full_rank():
    data = linreg_data()
    mean, cov = linreg_posterior(data["X"], data["y"])
    guide = AutoMultivariateNormal(linreg)
    run_svi(linreg, guide, data, spec(steps=500, lr=0.03, particles=4, vectorize=True, decay_to=0.1))
    post = guide.get_posterior()
    sd = cov.diag().sqrt()
    assert torch.all((post.loc.detach() - mean).abs() < 0.1 * sd)
    assert torch.all((post.covariance_matrix.diag().sqrt().detach() / sd - 1).abs() < 0.10)


def test_beta_bernoulli_coin_custom_beta_guide():
    # The SVI tutorial's coin with its Beta guide (the exact family).
    def guide(flips):
        a = pyro.param("alpha_q", torch.tensor(15.0), constraint=pyro.distributions.constraints.positive)
        b = pyro.param("beta_q", torch.tensor(15.0), constraint=pyro.distributions.constraints.positive)
        pyro.sample("fairness", pyro.distributions.Beta(a, b))

    run_svi(coin, guide, COIN, spec(steps=500, lr=0.05, particles=8, vectorize=True, decay_to=0.05))
    a, b = pyro.param("alpha_q").item(), pyro.param("beta_q").item()
    a0, b0 = COIN_POSTERIOR
    mean0, sd0 = a0 / (a0 + b0), math.sqrt(a0 * b0 / ((a0 + b0) ** 2 * (a0 + b0 + 1)))
    mean, sd = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert abs(mean - mean0) < 0.1 * sd0
    assert abs(sd / sd0 - 1) < 0.10


def test_autodelta_reaches_the_map():
    guide = AutoDelta(coin)
    run_svi(coin, guide, COIN, spec(steps=300, lr=0.05))
    a0, b0 = COIN_POSTERIOR
    assert abs(guide.median()["fairness"].item() - (a0 - 1) / (a0 + b0 - 2)) < 1e-3


def test_gmm_enumerated_assignments_autodelta_on_exposed_globals():
    data = gmm_data()
    guide_spec = AutoGuideSpec(
        auto="AutoDelta",
        expose=["weights", "locs", "scale"],
        options={"init_loc_fn": {"name": "init_to_value", "values": {"locs": [-1.0, 1.0]},
                                 "fallback": "init_to_median"}},
    )
    guide = build_guide(guide_spec, gmm)
    run = run_svi(gmm, guide, data, InferenceSpec(
        elbo=ElboSpec(name="TraceEnum_ELBO"), optimizer=OptimizerSpec(lr=0.1), steps=200, seed=0))
    locs = guide.median(**data)["locs"].detach().sort().values
    assert run.max_plate_nesting == 1
    assert torch.allclose(locs, torch.tensor([-3.0, 3.0]), atol=0.35)
