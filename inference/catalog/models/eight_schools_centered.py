"""Eight schools, centered parameterization (Rubin 1981).

Estimated effects ``y`` of SAT coaching in ``J`` schools, each with a known standard
error ``sigma``. School effects ``theta`` are drawn around a population mean ``mu``
with spread ``tau``. The centered form has a funnel between ``tau`` and ``theta``;
compare ``eight_schools_noncentered``.
"""

import pyro
import pyro.distributions as dist


def model(J, sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", J):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)
