"""Eight schools, non-centered parameterization (Rubin 1981).

The same model as ``eight_schools_centered``, with each school's effect written as
``theta = mu + tau * theta_tilde`` and ``theta_tilde ~ Normal(0, 1)``, which removes
the funnel between ``tau`` and the school effects.
"""

import pyro
import pyro.distributions as dist


def model(J, sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", J):
        theta_tilde = pyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_tilde)
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)
