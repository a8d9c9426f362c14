"""GARCH(1,1) volatility model of a series ``y`` of length ``T`` (posteriordb ``garch``).

``y[t] ~ Normal(mu, sigma[t])`` with ``sigma[0] = sigma1`` and
``sigma[t]^2 = alpha0 + alpha1 * (y[t-1] - mu)^2 + beta1 * sigma[t-1]^2``.
Stationarity needs ``alpha1 + beta1 < 1``: ``beta1`` is written as
``(1 - alpha1) * beta1_frac`` with ``beta1_frac ~ Uniform(0, 1)``. posteriordb uses flat
priors; these are proper and weakly informative.
"""

import pyro
import pyro.distributions as dist
import torch


def model(T, y, sigma1):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    alpha0 = pyro.sample("alpha0", dist.HalfNormal(10.0))
    alpha1 = pyro.sample("alpha1", dist.Uniform(0.0, 1.0))
    beta1_frac = pyro.sample("beta1_frac", dist.Uniform(0.0, 1.0))
    beta1 = pyro.deterministic("beta1", (1.0 - alpha1) * beta1_frac)
    sigma = torch.ones(()) * sigma1
    sigmas = [sigma]
    for t in range(1, T):
        sigma = torch.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * sigma**2)
        sigmas.append(sigma)
    with pyro.plate("time", T):
        pyro.sample("obs", dist.Normal(mu, torch.stack(sigmas)), obs=y)
