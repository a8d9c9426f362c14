"""Hierarchical (random intercept) model: ``N`` observations in ``J`` groups.

Each group ``j`` has its own intercept ``alpha[j] ~ Normal(mu, tau)``; observation
``n`` belongs to group ``group[n]`` (an integer in ``0..J-1``) and
``y[n] ~ Normal(alpha[group[n]], sigma)``. (``alpha[..., group]`` rather than
``alpha[group]`` keeps the model usable with a batch of posterior draws at once.)
"""

import pyro
import pyro.distributions as dist


def model(J, N, group, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfNormal(2.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("groups", J):
        alpha = pyro.sample("alpha", dist.Normal(mu, tau))
    with pyro.plate("data", N):
        pyro.sample("y", dist.Normal(alpha[..., group], sigma), obs=y)
