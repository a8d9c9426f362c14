"""Gaussian-process Poisson regression (posteriordb ``gp_pois_regr``).

Counts ``k[n]`` at inputs ``x[n]`` follow ``Poisson(exp(f[n]))`` where ``f`` is a
zero-mean GP with squared-exponential kernel of amplitude ``alpha`` and length scale
``rho``. ``f = L @ f_tilde`` with ``L`` the Cholesky factor of the kernel matrix and
``f_tilde ~ Normal(0, I)`` (the non-centered form used in posteriordb). The
``unsqueeze``/``squeeze`` calls let the model run on a batch of posterior draws at once.
"""

import pyro
import pyro.distributions as dist
import torch

JITTER = 1e-4


def model(N, x, k=None):
    rho = pyro.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = pyro.sample("alpha", dist.HalfNormal(2.0))
    with pyro.plate("points", N):
        f_tilde = pyro.sample("f_tilde", dist.Normal(0.0, 1.0))
    sq_dist = (x.unsqueeze(-1) - x.unsqueeze(-2)) ** 2
    amplitude = alpha.unsqueeze(-1) ** 2
    length_scale = rho.unsqueeze(-1)
    cov = amplitude * torch.exp(-0.5 * sq_dist / length_scale**2) + JITTER * torch.eye(
        N
    )
    L = torch.linalg.cholesky(cov)
    f = pyro.deterministic("f", (L @ f_tilde.unsqueeze(-1)).squeeze(-1))
    with pyro.plate("data", N):
        pyro.sample("k", dist.Poisson(torch.exp(f)), obs=k)
