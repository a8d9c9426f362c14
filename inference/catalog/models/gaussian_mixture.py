"""A 1-D Gaussian mixture of ``K = 2`` components with enumerated assignments.

Each of the ``N`` points ``y[n]`` belongs to component ``assignment[n]`` with
probabilities ``weights``; component ``k`` is ``Normal(locs[k], scales[k])``. The
discrete ``assignment`` is summed out exactly by ``TraceEnum_ELBO``
(``@config_enumerate``), so a guide only covers ``weights``, ``locs`` and ``scales``.
The prior means of ``locs`` are spread over ``[-2, 2]`` to break the label-switching
symmetry (posteriordb's Stan version uses an ordered vector instead).
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate

K = 2


@config_enumerate
def model(N, y=None):
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(K)))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(torch.linspace(-2.0, 2.0, K), 2.0))
        scales = pyro.sample("scales", dist.HalfNormal(2.0))
    with pyro.plate("data", N):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scales[assignment]), obs=y)
