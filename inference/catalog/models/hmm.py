"""A discrete hidden Markov model with Gaussian emissions and ``K = 3`` hidden states.

``N`` independent sequences of length ``T`` (the rows of ``y``). In each, the hidden
state ``x_t`` follows a Markov chain with transition matrix ``probs_x`` (row ``i`` is the
distribution of the next state given state ``i``; chains start from state 0), and
``y[n, t] ~ Normal(locs[x_t], scale)``. The states are enumerated and summed out by
``TraceEnum_ELBO``; ``pyro.markov`` tells Pyro each state depends only on the previous
one, so enumeration costs O(T K^2), not O(K^T).
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate

K = 3


@config_enumerate
def model(N, T, y):
    probs_x = pyro.sample(
        "probs_x", dist.Dirichlet(0.9 * torch.eye(K) + 0.1).to_event(1)
    )
    locs = pyro.sample(
        "locs", dist.Normal(torch.linspace(-2.0, 2.0, K), 1.0).to_event(1)
    )
    scale = pyro.sample("scale", dist.HalfNormal(1.0))
    with pyro.plate("sequences", N):
        x = 0
        for t in pyro.markov(range(T)):
            x = pyro.sample(f"x_{t}", dist.Categorical(probs_x[x]))
            pyro.sample(f"y_{t}", dist.Normal(locs[x], scale), obs=y[:, t])
