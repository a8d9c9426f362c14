"""A small variational autoencoder for binary vectors (amortized inference).

Each row ``x[n]`` (``D_X = 16`` pixels, 0/1) has a latent code ``z[n] ~ Normal(0, I)``
of size ``D_Z = 2``; the decoder network maps ``z`` to Bernoulli logits of the pixels.
The guide ``guide`` in the same source is the encoder network: it maps each row to the
mean and scale of a diagonal Normal over its code. Networks are registered with
``pyro.module`` so their weights are trained and returned as parameters.
"""

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn

D_X = 16
D_Z = 2
D_H = 32

decoder = nn.Sequential(nn.Linear(D_Z, D_H), nn.Softplus(), nn.Linear(D_H, D_X))
encoder = nn.Sequential(nn.Linear(D_X, D_H), nn.Softplus(), nn.Linear(D_H, 2 * D_Z))


def model(x):
    pyro.module("decoder", decoder)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(D_Z), torch.ones(D_Z)).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)


def guide(x):
    pyro.module("encoder", encoder)
    with pyro.plate("data", x.shape[0]):
        hidden = encoder(x)
        z_loc = hidden[:, :D_Z]
        z_scale = torch.exp(hidden[:, D_Z:])
        pyro.sample("z", dist.Normal(z_loc, z_scale).to_event(1))
