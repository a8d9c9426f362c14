import torch

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine


def model_2(capture_history, sex):
    N, T = capture_history.shape
    rho = pyro.sample("rho", dist.Uniform(0.0, 1.0))  # recapture probability

    z = torch.ones(N)
    first_capture_mask = torch.zeros(N).bool()
    # we create the plate once, outside of the loop over t
    animals_plate = pyro.plate("animals", N, dim=-1)
    for t in pyro.markov(range(T)):
        # note that phi_t needs to be outside the plate, since
        # phi_t is shared across all N individuals
        phi_t = (
            pyro.sample("phi_{}".format(t), dist.Uniform(0.0, 1.0)) if t > 0 else 1.0
        )
        with animals_plate, poutine.mask(mask=first_capture_mask):
            mu_z_t = first_capture_mask.float() * phi_t * z + (
                1 - first_capture_mask.float()
            )
            # we use parallel enumeration to exactly sum out
            # the discrete states z_t.
            z = pyro.sample(
                "z_{}".format(t),
                dist.Bernoulli(mu_z_t),
                infer={"enumerate": "parallel"},
            )
            mu_y_t = rho * z
            pyro.sample(
                "y_{}".format(t), dist.Bernoulli(mu_y_t), obs=capture_history[:, t]
            )
        first_capture_mask |= capture_history[:, t].bool()
