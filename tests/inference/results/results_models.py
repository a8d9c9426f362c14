"""Small Pyro models written directly in Python for the results tests.

Conjugate Normal mean (closed-form posterior and evidence), eight schools non-centred
(the catalog's, from ``tests/models.py``),
a two-component Gaussian mixture with enumerated assignments, and a linear regression
with only global latents (for prediction on new data).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, config_enumerate
from pyro.optim import Adam

import models

# ---------------------------------------------------------------- conjugate Normal mean

PRIOR_SD = 2.0
NOISE_SD = 1.0


def conjugate_data(n: int = 20, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"y": torch.randn(n, generator=g) + 1.0}


def conjugate_model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("obs", dist.Normal(mu, NOISE_SD), obs=y)


def conjugate_posterior(y) -> tuple[float, float]:
    precision = 1 / PRIOR_SD**2 + y.shape[0] / NOISE_SD**2
    mean = float(y.sum()) / NOISE_SD**2 / precision
    return mean, precision**-0.5


def conjugate_log_evidence(y) -> float:
    n = y.shape[0]
    cov = NOISE_SD**2 * torch.eye(n, dtype=torch.float64) + PRIOR_SD**2
    return float(dist.MultivariateNormal(torch.zeros(n, dtype=torch.float64), cov).log_prob(y.double()))


def conjugate_guide(scale_factor: float = 1.0):
    """The exact posterior as a guide (``scale_factor`` != 1 widens or narrows it)."""

    def guide(y):
        mean, sd = conjugate_posterior(y)
        pyro.sample("mu", dist.Normal(mean, sd * scale_factor))

    return guide


# ---------------------------------------------------------------- eight schools

# The catalog's model and example data (tests/models.py).
EIGHT = models.data(models.EIGHT_SCHOOLS)
eight_schools = models.eight_schools


# ---------------------------------------------------------------- enumerated mixture


def gmm_data(seed: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randn(12, generator=g) - 3.0, torch.randn(12, generator=g) + 3.0])
    return {"x": x}


@config_enumerate
def gmm(x):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2)))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", x.shape[0]):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("x", dist.Normal(locs[assignment], 1.0), obs=x)


def gmm_fixed_guide(weights=(0.5, 0.5), locs=(-3.0, 3.0)):
    """A point-mass guide on the globals (the model enumerates the assignments)."""

    def guide(x):
        pyro.sample("weights", dist.Delta(torch.tensor(weights)).to_event(1))
        with pyro.plate("components", 2):
            pyro.sample("locs", dist.Delta(torch.tensor(locs)))

    return guide


def gmm_log_marginal(x, weights, locs) -> float:
    """log p(x, weights, locs) with the assignments summed out, in closed form."""
    weights, locs = torch.as_tensor(weights).double(), torch.as_tensor(locs).double()
    per_point = gmm_pointwise(x, weights, locs)
    log_prior = dist.Dirichlet(torch.ones(2, dtype=torch.float64)).log_prob(weights)
    log_prior = log_prior + dist.Normal(0.0, 10.0).log_prob(locs).sum()
    return float(log_prior + per_point.sum())


def gmm_pointwise(x, weights, locs) -> torch.Tensor:
    weights, locs = torch.as_tensor(weights).double(), torch.as_tensor(locs).double()
    comp = dist.Normal(locs, 1.0).log_prob(x.double()[:, None]) + weights.log()
    return torch.logsumexp(comp, dim=-1)


# ---------------------------------------------------------------- regression (global latents)


def regression_data(n: int = 30, seed: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2, 2, n)
    return {"x": x, "y": 1.5 * x - 0.5 + 0.3 * torch.randn(n, generator=g)}


def regression(x, y=None):
    slope = pyro.sample("slope", dist.Normal(0.0, 5.0))
    intercept = pyro.sample("intercept", dist.Normal(0.0, 5.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(slope * x + intercept, 0.3), obs=y)


def random_effects(x, y=None):
    """A global slope plus one local offset per data point (shape follows the data)."""
    slope = pyro.sample("slope", dist.Normal(0.0, 5.0))
    with pyro.plate("data", x.shape[0]):
        offset = pyro.sample("offset", dist.Normal(0.0, 0.1))
        pyro.sample("y", dist.Normal(slope * x + offset, 0.3), obs=y)


# ---------------------------------------------------------------- training


def train(model, guide, kwargs: dict, steps: int, lr: float = 0.05, seed: int = 0) -> None:
    pyro.set_rng_seed(seed)
    svi = SVI(model, guide, Adam({"lr": lr}), Trace_ELBO())
    for _ in range(steps):
        svi.step(**kwargs)


def mc_tolerance(values, num: int, sigmas: float = 4.0) -> float:
    """A tolerance of ``sigmas`` Monte Carlo standard errors (two independent estimates)."""
    sd = float(torch.as_tensor(values, dtype=torch.float64).std())
    return sigmas * math.sqrt(2.0) * sd / math.sqrt(num) + 1e-6


def batch_unsafe(x, y):
    """Runs under an extra batch dim but gives wrong numbers there (``w.mean()`` mixes draws)."""
    w = pyro.sample("w", dist.Normal(0.0, 1.0))
    mean = pyro.deterministic("mean", w.mean() * x)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(mean, 1.0), obs=y)


def batch_unsafe_guide(x, y):
    pyro.sample("w", dist.Normal(0.5, 0.2))


def hmm_data(seed: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"y": torch.randn(3, 5, generator=g) + torch.tensor([-2.0, 0.0, 2.0, 2.0, 0.0])}


@config_enumerate
def hmm(y):
    """Three sequences of five steps; hidden states chained with pyro.markov."""
    probs = pyro.sample("probs", dist.Dirichlet(0.8 * torch.eye(2) + 0.2).to_event(1))
    locs = pyro.sample("locs", dist.Normal(torch.tensor([-2.0, 2.0]), 1.0).to_event(1))
    with pyro.plate("sequences", y.shape[0]):
        state = 0
        for t in pyro.markov(range(y.shape[1])):
            state = pyro.sample(f"state_{t}", dist.Categorical(probs[state]))
            pyro.sample(f"y_{t}", dist.Normal(locs[state], 1.0), obs=y[:, t])


def hmm_fixed_guide(y):
    pyro.sample("probs", dist.Delta(torch.tensor([[0.7, 0.3], [0.4, 0.6]])).to_event(2))
    pyro.sample("locs", dist.Delta(torch.tensor([-1.5, 1.8])).to_event(1))
