import torch
from torch.distributions import constraints
import pyro
import pyro.distributions as dist


def model_mle(data):
    # note that we need to include the interval constraint; 
    # in original_model() this constraint appears implicitly in 
    # the support of the Beta distribution.
    f = pyro.param("latent_fairness", torch.tensor(0.5), 
                   constraint=constraints.unit_interval)
    with pyro.plate("data", data.size(0)):
        pyro.sample("obs", dist.Bernoulli(f), obs=data)


def guide_mle(data):
    pass
