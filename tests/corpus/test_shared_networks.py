"""Model and guide written in one source share one compilation: a network the model
registers with ``pyro.module`` and only the guide uses trains (the CVAE example)."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from .harness import losses_match, run_pyro
from .manifest import BY_NAME

pytestmark = pytest.mark.filterwarnings("ignore")

RECOGNITION = "generation_net$$$recognition_net.fc1.weight"


def _initial_recognition_weight(case) -> np.ndarray:
    """The guide network's weights before training (the source run as Python, same seed)."""
    from inference.engine.global_state import isolated, seed_all

    with isolated(seed=case.seed, float_dtype=torch.float32):
        seed_all(case.seed)
        namespace: dict = {}
        exec(compile(case.source, "<cvae>", "exec"), namespace)  # trusted test code
        return namespace["cvae"].recognition_net.fc1.weight.detach().numpy().copy()


def test_cvae_guide_network_trains_and_matches_plain_pyro():
    from inference import fit

    case = BY_NAME["cvae_example"]
    before = _initial_recognition_weight(case)
    result = fit(case.spec(), case.data(np.random.default_rng(case.seed)))
    params = {**result.model_params, **result.guide_params}
    after = np.asarray(params[RECOGNITION]["value"], dtype=np.float32)
    assert after.shape == before.shape
    # the guide's network got gradient steps: its weights moved from their initial values
    assert np.abs(after - before).max() > 1e-4
    assert losses_match(run_pyro(case), [float(x) for x in result.loss[: case.steps]])


def test_guide_in_same_source_shares_modules_and_gets_guide_only_fields():
    from inference import fit

    source = '''
import torch
import torch.nn as nn
import pyro
import pyro.distributions as dist

net = nn.Linear(2, 1)

def model(x):
    pyro.module("net", net)
    with pyro.plate("n", x.shape[0]):
        pyro.sample("z", dist.Normal(0.0, 1.0))

def guide(x, scale_hint):
    with pyro.plate("n", x.shape[0]):
        loc = net(x).squeeze(-1)
        pyro.sample("z", dist.Normal(loc, scale_hint))
'''
    spec = {"model": {"source": source}, "guide": {"source": source, "entry": "guide"},
            "inference": {"steps": 5, "optimizer": {"name": "Adam", "lr": 0.1}, "checkpoint_every_s": None},
            "outputs": {"num_samples": 2, "elbo_terms_every": 0, "elbo_terms_particles": 1,
                        "grad_norms_every": 0, "log_prob_draws": 2, "log_probs": False}}
    data = {"x": np.ones((3, 2), np.float32), "scale_hint": 0.5}
    result = fit(spec, data)
    weights = {**result.model_params, **result.guide_params}["net$$$weight"]["value"]
    pyro.set_rng_seed(0)
    initial = nn_initial_weight()
    assert not np.allclose(np.asarray(weights, dtype=np.float32), initial)
    assert not any("scale_hint" in w["message"] for w in result.diagnostics["warnings"])


def nn_initial_weight() -> np.ndarray:
    torch.manual_seed(0)
    return torch.nn.Linear(2, 1).weight.detach().numpy()
