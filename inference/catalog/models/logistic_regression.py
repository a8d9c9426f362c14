"""Logistic regression: binary outcomes ``y`` (0/1) on an ``N x D`` design matrix ``X``.

``y ~ Bernoulli(logits = alpha + X @ beta)``, with weakly informative Normal(0, 2.5)
priors on the intercept ``alpha`` and each coefficient ``beta[d]``.
"""

import pyro
import pyro.distributions as dist


def model(X, y=None):
    N, D = X.shape
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.5))
    with pyro.plate("features", D):
        beta = pyro.sample("beta", dist.Normal(0.0, 2.5))
    with pyro.plate("data", N):
        logits = alpha + X @ beta
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)
