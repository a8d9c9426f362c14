"""An autoregressive model of order ``K`` for a time series ``y`` of length ``T``.

``y[t] ~ Normal(alpha + sum_k beta[k] * y[t - k - 1], sigma)`` for ``t >= K``
(posteriordb's ``arK``; the first ``K`` values are conditioned on, not modelled).
``beta[..., k : k + 1]`` rather than ``beta[k]`` lets the model run on a batch of draws
of ``beta`` at once (vectorized posterior sampling).
"""

import pyro
import pyro.distributions as dist


def model(K, T, y):
    alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
    with pyro.plate("lags", K):
        beta = pyro.sample("beta", dist.Normal(0.0, 10.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
    mean = alpha
    for k in range(K):
        mean = mean + beta[..., k : k + 1] * y[K - k - 1 : T - k - 1]
    with pyro.plate("time", T - K):
        pyro.sample("obs", dist.Normal(mean, sigma), obs=y[K:])
