"""Linear regression of a child's test score on the mother's IQ (Gelman & Hill).

``kid_score ~ Normal(alpha + beta * (mom_iq - 100), sigma)`` for ``N`` children.
``alpha`` is the expected score of a child whose mother has an IQ of 100, ``beta``
the change in score per IQ point and ``sigma`` the residual noise.
"""

import pyro
import pyro.distributions as dist


def model(N, mom_iq, kid_score=None):
    alpha = pyro.sample("alpha", dist.Normal(80.0, 20.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(20.0))
    mean = alpha + beta * (mom_iq - 100.0)
    with pyro.plate("children", N):
        pyro.sample("kid_score", dist.Normal(mean, sigma), obs=kid_score)
