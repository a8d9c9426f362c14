"""The catalog models written directly in Pyro: the references the language is checked
against (``test_catalog.py``) and timed against (``bench/bench_language.py``).

Written independently of ``inference/catalog/models/*.py`` on purpose: a mistake in a
catalog source then shows up as a mismatch instead of being copied into its reference.
The tensor operations are the catalog's (so the benchmark measures the cost of
interpreting the source, not a different formulation), except ``garch``, whose
reference recurses on the variance instead of the standard deviation.
Each model takes the catalog's data fields as keyword arguments (already tensors).
``GUIDES`` holds the hand-written guides (only the VAE has one).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate
from torch import nn


def eight_schools_centered(J, sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", J):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentered(J, sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", J):
        theta_tilde = pyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_tilde)
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def linear_regression(N, mom_iq, kid_score=None):
    alpha = pyro.sample("alpha", dist.Normal(80.0, 20.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(20.0))
    with pyro.plate("children", N):
        pyro.sample(
            "kid_score",
            dist.Normal(alpha + beta * (mom_iq - 100.0), sigma),
            obs=kid_score,
        )


def logistic_regression(X, y=None):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.5))
    with pyro.plate("features", X.shape[1]):
        beta = pyro.sample("beta", dist.Normal(0.0, 2.5))
    with pyro.plate("data", X.shape[0]):
        logits = alpha + (X @ beta.unsqueeze(-1)).squeeze(-1)
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def poisson_regression(N, x, counts=None):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0))
    with pyro.plate("data", N):
        pyro.sample("counts", dist.Poisson((alpha + beta * x).exp()), obs=counts)


def hierarchical_intercept(J, N, group, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfNormal(2.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("groups", J):
        alpha = pyro.sample("alpha", dist.Normal(mu, tau))
    with pyro.plate("data", N):
        pyro.sample("y", dist.Normal(alpha[..., group], sigma), obs=y)


@config_enumerate
def gaussian_mixture(N, y=None):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(2)))
    with pyro.plate("components", 2):
        locs = pyro.sample("locs", dist.Normal(torch.tensor([-2.0, 2.0]), 2.0))
        scales = pyro.sample("scales", dist.HalfNormal(2.0))
    with pyro.plate("data", N):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scales[assignment]), obs=y)


def hmm(N, T, y):
    probs_x = pyro.sample(
        "probs_x", dist.Dirichlet(0.9 * torch.eye(3) + 0.1).to_event(1)
    )
    locs = pyro.sample(
        "locs", dist.Normal(torch.tensor([-2.0, 0.0, 2.0]), 1.0).to_event(1)
    )
    scale = pyro.sample("scale", dist.HalfNormal(1.0))
    with pyro.plate("sequences", N):
        x = 0
        for t in pyro.markov(range(T)):
            x = pyro.sample(
                f"x_{t}", dist.Categorical(probs_x[x]), infer={"enumerate": "parallel"}
            )
            pyro.sample(f"y_{t}", dist.Normal(locs[x], scale), obs=y[:, t])


VAE_DECODER = nn.Sequential(nn.Linear(2, 32), nn.Softplus(), nn.Linear(32, 16))
VAE_ENCODER = nn.Sequential(nn.Linear(16, 32), nn.Softplus(), nn.Linear(32, 4))


def vae(x):
    pyro.module("decoder", VAE_DECODER)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(x.new_zeros(2), x.new_ones(2)).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=VAE_DECODER(z)).to_event(1), obs=x)


def vae_guide(x):
    pyro.module("encoder", VAE_ENCODER)
    with pyro.plate("data", x.shape[0]):
        hidden = VAE_ENCODER(x)
        pyro.sample("z", dist.Normal(hidden[:, :2], hidden[:, 2:].exp()).to_event(1))


def arK(K, T, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
    with pyro.plate("lags", K):
        beta = pyro.sample("beta", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
    mean = alpha
    for k in range(K):  # lag k + 1
        mean = mean + beta[..., k : k + 1] * y[K - k - 1 : T - k - 1]
    with pyro.plate("time", T - K):
        pyro.sample("obs", dist.Normal(mean, sigma), obs=y[K:])


def garch(T, y, sigma1):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    alpha0 = pyro.sample("alpha0", dist.HalfNormal(10.0))
    alpha1 = pyro.sample("alpha1", dist.Uniform(0.0, 1.0))
    beta1_frac = pyro.sample("beta1_frac", dist.Uniform(0.0, 1.0))
    beta1 = pyro.deterministic("beta1", (1.0 - alpha1) * beta1_frac)
    variance = torch.as_tensor(sigma1, dtype=y.dtype) ** 2
    variances = [variance]
    for t in range(1, T):
        variance = alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * variance
        variances.append(variance)
    with pyro.plate("time", T):
        pyro.sample("obs", dist.Normal(mu, torch.stack(variances).sqrt()), obs=y)


def gp_pois_regr(N, x, k=None):
    rho = pyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = pyro.sample("alpha", dist.HalfNormal(2.0))
    with pyro.plate("points", N):
        f_tilde = pyro.sample("f_tilde", dist.Normal(0.0, 1.0))
    # The same floating-point operations as the catalog source: the Cholesky factor of
    # this badly conditioned matrix amplifies float32 rounding differences.
    sq_dist = (x[:, None] - x[None, :]) ** 2
    cov = alpha.unsqueeze(-1) ** 2 * torch.exp(-0.5 * sq_dist / rho.unsqueeze(-1) ** 2)
    cov = cov + 1e-4 * torch.eye(N)
    f = (torch.linalg.cholesky(cov) @ f_tilde.unsqueeze(-1)).squeeze(-1)
    f = pyro.deterministic("f", f)
    with pyro.plate("data", N):
        pyro.sample("k", dist.Poisson(f.exp()), obs=k)


MODELS = {
    "eight_schools_centered": eight_schools_centered,
    "eight_schools_noncentered": eight_schools_noncentered,
    "linear_regression": linear_regression,
    "logistic_regression": logistic_regression,
    "poisson_regression": poisson_regression,
    "hierarchical_intercept": hierarchical_intercept,
    "gaussian_mixture": gaussian_mixture,
    "hmm": hmm,
    "vae": vae,
    "arK": arK,
    "garch": garch,
    "gp_pois_regr": gp_pois_regr,
}

GUIDES = {"vae": vae_guide}

# Networks by the name they are registered under with ``pyro.module``.
MODULES = {"decoder": VAE_DECODER, "encoder": VAE_ENCODER}

# Models whose discrete sites are enumerated: compared and fitted with TraceEnum_ELBO.
ENUMERATED = {"gaussian_mixture", "hmm"}
