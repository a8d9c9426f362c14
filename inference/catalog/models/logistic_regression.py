"""Logistic regression: binary outcomes ``y`` (0/1) on an ``N x D`` design matrix ``X``.

``y ~ Bernoulli(logits = alpha + X @ beta)``, with weakly informative Normal(0, 2.5)
priors on the intercept ``alpha`` and each coefficient ``beta[d]``. The product is
written ``(X @ beta.unsqueeze(-1)).squeeze(-1)`` so that the model also runs on a batch
of draws of ``beta`` at once (vectorized posterior sampling).
"""

import pyro
import pyro.distributions as dist


def model(X, y=None):
    N, D = X.shape
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.5))
    with pyro.plate("features", D):
        beta = pyro.sample("beta", dist.Normal(0.0, 2.5))
    with pyro.plate("data", N):
        logits = alpha + (X @ beta.unsqueeze(-1)).squeeze(-1)
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)
