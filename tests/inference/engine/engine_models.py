"""Plain-Python Pyro models (and data) shared by the engine tests.

They take their data as keyword arguments, exactly like compiled model-language
programs, so the engine treats both the same way.
"""

from __future__ import annotations

import math

import torch
import pyro
import pyro.distributions as dist
from pyro.infer import config_enumerate

import models
from inference.spec import ElboSpec, InferenceSpec, OptimizerSpec, SchedulerSpec

# The catalog's model and example data (tests/models.py).
EIGHT_SCHOOLS = models.data(models.EIGHT_SCHOOLS)
eight_schools = models.eight_schools


# Normal mean with known noise: mu ~ N(0, prior_sd), y_i ~ N(mu, noise_sd).
def normal_mean(y, prior_sd=10.0, noise_sd=1.0):
    mu = pyro.sample("mu", dist.Normal(0.0, prior_sd))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("obs", dist.Normal(mu, noise_sd), obs=y)


def normal_mean_posterior(y, prior_sd=10.0, noise_sd=1.0):
    precision = 1.0 / prior_sd**2 + y.shape[0] / noise_sd**2
    return float(y.sum() / noise_sd**2 / precision), math.sqrt(1.0 / precision)


def normal_mean_data(n=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {"y": 1.5 + torch.randn(n, generator=g)}


# The coin (Beta-Bernoulli) of Pyro's SVI tutorial.
def coin(flips):
    f = pyro.sample("fairness", dist.Beta(10.0, 10.0))
    with pyro.plate("flips", flips.shape[0]):
        pyro.sample("obs", dist.Bernoulli(f), obs=flips)


COIN = {"flips": torch.tensor([1.0] * 6 + [0.0] * 4)}
COIN_POSTERIOR = (16.0, 14.0)  # Beta(10 + heads, 10 + tails)


def coin_guide(flips):
    a = pyro.param("alpha_q", torch.tensor(15.0), constraint=dist.constraints.positive)
    b = pyro.param("beta_q", torch.tensor(15.0), constraint=dist.constraints.positive)
    pyro.sample("fairness", dist.Beta(a, b))


# Bayesian linear regression with known noise.
def linreg(X, y, noise_sd=0.5):
    w = pyro.sample("w", dist.Normal(torch.zeros(X.shape[1]), 1.0).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("obs", dist.Normal((X * w).sum(-1), noise_sd), obs=y)


def linreg_data(n=40, d=3, seed=2):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = X @ torch.tensor([1.0, -0.5, 0.25])[:d] + 0.5 * torch.randn(n, generator=g)
    return {"X": X, "y": y}


def linreg_posterior(X, y, noise_sd=0.5):
    precision = X.T @ X / noise_sd**2 + torch.eye(X.shape[1])
    cov = torch.linalg.inv(precision)
    return cov @ X.T @ y / noise_sd**2, cov


# A Gaussian mixture with enumerated assignments (two well-separated components).
@config_enumerate
def gmm(y, K=2):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(K)))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
        scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        z = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[z], scale[z]), obs=y)


def gmm_data(n=60, seed=3):
    g = torch.Generator().manual_seed(seed)
    z = torch.arange(n) % 2
    return {"y": torch.where(z == 0, torch.tensor(-3.0), torch.tensor(3.0)) + 0.7 * torch.randn(n, generator=g)}


# A LogNormal toy: z ~ LogNormal(0, 0.5), y_i ~ Normal(z, 1).
def lognormal_toy(y):
    z = pyro.sample("z", dist.LogNormal(0.0, 0.5))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("obs", dist.Normal(z, 1.0), obs=y)


LOGNORMAL_TOY = {"y": torch.tensor([1.8, 0.9, 1.4, 2.2])}


# Logistic regression with a global weight vector (for JIT / bench-like checks).
def logistic(X, y):
    w = pyro.sample("w", dist.Normal(torch.zeros(X.shape[1]), 1.0).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("obs", dist.Bernoulli(logits=(X * w).sum(-1) + b), obs=y)


def logistic_data(n=100, d=3, seed=4):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = (torch.rand(n, generator=g) < torch.sigmoid(X @ torch.ones(d))).float()
    return {"X": X, "y": y}


def spec(steps=300, lr=0.05, elbo="Trace_ELBO", particles=1, vectorize=False, decay_to=None,
         seed=0, **kwargs) -> InferenceSpec:
    """An InferenceSpec for tests; ``decay_to`` adds an exponential decay to that lr factor."""
    scheduler = kwargs.pop("scheduler", None)
    if decay_to is not None:
        scheduler = SchedulerSpec(name="exponential", gamma=decay_to ** (1.0 / steps))
    return InferenceSpec(
        elbo=ElboSpec(name=elbo, num_particles=particles, vectorize_particles=vectorize),
        optimizer=OptimizerSpec(name="Adam", lr=lr),
        scheduler=scheduler,
        steps=steps,
        seed=seed,
        **kwargs,
    )
