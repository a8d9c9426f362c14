"""Poisson regression: counts on one covariate with a log link.

``counts ~ Poisson(exp(alpha + beta * x))`` for ``N`` observations.
"""

import pyro
import pyro.distributions as dist
import torch


def model(N, x, counts=None):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0))
    rate = torch.exp(alpha + beta * x)
    with pyro.plate("data", N):
        pyro.sample("counts", dist.Poisson(rate), obs=counts)
