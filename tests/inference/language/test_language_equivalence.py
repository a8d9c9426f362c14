"""Trace equivalence: a model in the language traces like the same model in Pyro.

For each pair the native model is traced once; both models are then replayed with all
sample sites conditioned on those values and must agree on site names, types, shapes,
``infer`` flags and ``log_prob_sum``.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.infer.autoguide import AutoDelta, AutoNormal
from torch import nn

import models
from inference import compile_source

# ---------------------------------------------------------------------------- sources

# The catalog's text, against the same file imported as plain Pyro (tests/models.py).
EIGHT_SCHOOLS = models.source(models.EIGHT_SCHOOLS)
eight_schools = models.eight_schools


LOGISTIC = """
def model(x, y=None):
    D = x.shape[1]
    w = pyro.sample("w", dist.Normal(torch.zeros(D), torch.ones(D)).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    logits = x @ w + b
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)
"""


def logistic(x, y=None):
    D = x.shape[1]
    w = pyro.sample("w", dist.Normal(torch.zeros(D), torch.ones(D)).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 5.0))
    logits = x @ w + b
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


POISSON_HIER = """
def model(group, n_groups, counts=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    sd = pyro.sample("sd", dist.HalfNormal(1.0))
    with pyro.plate("groups", n_groups):
        alpha = pyro.sample("alpha", dist.Normal(mu, sd))
    with pyro.plate("obs_plate", len(group)):
        pyro.sample("counts", dist.Poisson(alpha[group].exp()), obs=counts)
"""


def poisson_hier(group, n_groups, counts=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    sd = pyro.sample("sd", dist.HalfNormal(1.0))
    with pyro.plate("groups", n_groups):
        alpha = pyro.sample("alpha", dist.Normal(mu, sd))
    with pyro.plate("obs_plate", len(group)):
        pyro.sample("counts", dist.Poisson(alpha[group].exp()), obs=counts)


GMM = """
K = 3

@config_enumerate
def model(data):
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)
"""


@config_enumerate
def gmm(data):
    K = 3
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data)):
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


HMM = """
def model(obs, hidden_dim=2):
    T = obs.shape[0]
    trans = pyro.sample("trans", dist.Dirichlet(torch.ones(hidden_dim, hidden_dim)).to_event(1))
    locs = pyro.sample("locs", dist.Normal(torch.zeros(hidden_dim), 3.0).to_event(1))
    x = 0
    for t in pyro.markov(range(T)):
        x = pyro.sample(f"x_{t}", dist.Categorical(trans[x]), infer={"enumerate": "parallel"})
        pyro.sample(f"y_{t}", dist.Normal(locs[x], 1.0), obs=obs[t])
"""


def hmm(obs, hidden_dim=2):
    T = obs.shape[0]
    trans = pyro.sample(
        "trans", dist.Dirichlet(torch.ones(hidden_dim, hidden_dim)).to_event(1)
    )
    locs = pyro.sample("locs", dist.Normal(torch.zeros(hidden_dim), 3.0).to_event(1))
    x = 0
    for t in pyro.markov(range(T)):
        x = pyro.sample(
            f"x_{t}", dist.Categorical(trans[x]), infer={"enumerate": "parallel"}
        )
        pyro.sample(f"y_{t}", dist.Normal(locs[x], 1.0), obs=obs[t])


GP = """
def model(x, y):
    ls = pyro.sample("lengthscale", dist.LogNormal(0.0, 1.0))
    var = pyro.sample("variance", dist.LogNormal(0.0, 1.0))
    noise = pyro.sample("noise", dist.HalfNormal(1.0))
    d = torch.cdist(x.unsqueeze(-1), x.unsqueeze(-1))
    K = var * torch.exp(-0.5 * (d / ls) ** 2) + (noise + 1e-4) * torch.eye(x.shape[0])
    L = torch.linalg.cholesky(K)
    pyro.sample("y", dist.MultivariateNormal(torch.zeros(x.shape[0]), scale_tril=L), obs=y)
"""


def gp(x, y):
    ls = pyro.sample("lengthscale", dist.LogNormal(0.0, 1.0))
    var = pyro.sample("variance", dist.LogNormal(0.0, 1.0))
    noise = pyro.sample("noise", dist.HalfNormal(1.0))
    d = torch.cdist(x.unsqueeze(-1), x.unsqueeze(-1))
    K = var * torch.exp(-0.5 * (d / ls) ** 2) + (noise + 1e-4) * torch.eye(x.shape[0])
    L = torch.linalg.cholesky(K)
    pyro.sample(
        "y", dist.MultivariateNormal(torch.zeros(x.shape[0]), scale_tril=L), obs=y
    )


torch.manual_seed(0)
_X = torch.randn(20, 3)
CASES = {
    "eight_schools": (
        EIGHT_SCHOOLS,
        eight_schools,
        (
            8,
            torch.tensor([15.0, 10, 16, 11, 9, 11, 10, 18]),
            torch.tensor([28.0, 8, -3, 7, -1, 1, 18, 12]),
        ),
    ),
    "logistic": (LOGISTIC, logistic, (_X, (torch.rand(20) > 0.5).float())),
    "poisson_hier": (
        POISSON_HIER,
        poisson_hier,
        (torch.tensor([0, 1, 2, 0, 1, 2, 2]), 3, torch.tensor([1.0, 0, 3, 2, 5, 1, 0])),
    ),
    "gmm": (GMM, gmm, (torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0]),)),
    "hmm": (HMM, hmm, (torch.tensor([0.1, 2.0, 2.2, -0.3]),)),
    "gp": (GP, gp, (torch.linspace(0, 1, 6), torch.sin(torch.linspace(0, 1, 6)))),
}


def _sites(tr):
    return {
        name: (
            site["type"],
            tuple(site["value"].shape),
            site.get("is_observed"),
            dict(site.get("infer", {})),
        )
        for name, site in tr.nodes.items()
        if site["type"] == "sample"
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_trace_matches_native_pyro(name):
    source, native, args = CASES[name]
    program = compile_source(source)
    pyro.set_rng_seed(1)
    reference = poutine.trace(native).get_trace(*args)
    values = {
        n: s["value"]
        for n, s in reference.nodes.items()
        if s["type"] == "sample" and not s["is_observed"]
    }
    native_tr = poutine.trace(poutine.condition(native, data=values)).get_trace(*args)
    language_tr = poutine.trace(poutine.condition(program, data=values)).get_trace(
        *args
    )
    assert _sites(language_tr) == _sites(native_tr)
    assert torch.allclose(language_tr.log_prob_sum(), native_tr.log_prob_sum())
    # and unconditioned runs with the same seed draw the same values
    pyro.set_rng_seed(7)
    a = poutine.trace(native).get_trace(*args)
    pyro.set_rng_seed(7)
    b = poutine.trace(program).get_trace(*args)
    assert torch.allclose(a.log_prob_sum(), b.log_prob_sum())


def test_enumerated_gmm_elbo_matches_native():
    data = CASES["gmm"][2][0]
    program = compile_source(GMM)
    losses = []
    for model in (gmm, program):
        pyro.clear_param_store()
        pyro.set_rng_seed(3)
        guide = AutoDelta(poutine.block(model, expose=["weights", "locs", "scale"]))
        svi = SVI(
            model,
            guide,
            pyro.optim.Adam({"lr": 0.1}),
            TraceEnum_ELBO(max_plate_nesting=1),
        )
        losses.append([svi.step(data) for _ in range(5)])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_vae_with_nn_modules_matches_native():
    source = """
import torch.nn as nn
decoder = nn.Sequential(nn.Linear(2, 8), nn.Softplus(), nn.Linear(8, 5), nn.Sigmoid())

def model(x):
    pyro.module("decoder", decoder)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1))
        pyro.sample("x", dist.Bernoulli(decoder(z)).to_event(1), obs=x)
"""
    program = compile_source(source)
    decoder = nn.Sequential(
        nn.Linear(2, 8), nn.Softplus(), nn.Linear(8, 5), nn.Sigmoid()
    )
    decoder.load_state_dict(program._unit.globals["decoder"].state_dict())

    def native(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample(
                "z", dist.Normal(torch.zeros(x.shape[0], 2), 1.0).to_event(1)
            )
            pyro.sample("x", dist.Bernoulli(decoder(z)).to_event(1), obs=x)

    x = (torch.rand(4, 5) > 0.5).float()
    z = torch.randn(4, 2)
    pyro.clear_param_store()
    a = poutine.trace(poutine.condition(native, data={"z": z})).get_trace(x)
    pyro.clear_param_store()
    b = poutine.trace(poutine.condition(program, data={"z": z})).get_trace(x)
    assert _sites(a) == _sites(b)
    assert torch.allclose(a.log_prob_sum(), b.log_prob_sum())


# ------------------------------------------------------------------ tutorial models


def _svi(model, guide, *args, elbo=None, steps=5):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), elbo or Trace_ELBO())
    return [svi.step(*args) for _ in range(steps)]


def test_tutorial_beta_bernoulli_coin_with_custom_guide():
    # pyro.ai/examples/svi_part_i.html, unchanged except that data is an argument
    source = """
import torch
import pyro
import pyro.distributions as dist
from torch.distributions import constraints

def model(data):
    alpha0 = torch.tensor(10.0)
    beta0 = torch.tensor(10.0)
    f = pyro.sample("latent_fairness", dist.Beta(alpha0, beta0))
    for i in range(len(data)):
        pyro.sample("obs_{}".format(i), dist.Bernoulli(f), obs=data[i])

def guide(data):
    alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))
"""
    model = compile_source(source)
    guide = model.function("guide")
    data = torch.cat([torch.ones(6), torch.zeros(4)])
    losses = _svi(model, guide, data, steps=20)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert set(pyro.get_param_store()) == {"alpha_q", "beta_q"}


def test_tutorial_gmm_with_autodelta_block_expose():
    # pyro.ai/examples/gmm.html
    program = compile_source(GMM)
    data = torch.tensor([0.0, 1.0, 10.0, 11.0, 12.0])
    guide = AutoDelta(poutine.block(program, expose=["weights", "locs", "scale"]))
    losses = _svi(
        program, guide, data, elbo=TraceEnum_ELBO(max_plate_nesting=1), steps=20
    )
    assert losses[-1] < losses[0]


def test_tutorial_lda_style_model_with_mlp_guide():
    # a reduced version of pyro.ai/examples/prodlda.html / lda.html (amortized guide)
    source = """
import torch.nn as nn

num_topics = 3
vocab = 12
encoder = nn.Sequential(nn.Linear(vocab, 16), nn.Softplus(), nn.Linear(16, 2 * num_topics))

def model(docs):
    with pyro.plate("topics", num_topics):
        topic_words = pyro.sample("topic_words", dist.Dirichlet(torch.ones(vocab) / vocab))
    with pyro.plate("documents", docs.shape[0]):
        logtheta = pyro.sample(
            "logtheta", dist.Normal(torch.zeros(num_topics), 1.0).to_event(1)
        )
        theta = F.softmax(logtheta, -1)
        count_param = theta @ topic_words
        pyro.sample("obs", dist.Multinomial(12, count_param), obs=docs)

def guide(docs):
    pyro.module("encoder", encoder)
    with pyro.plate("topics", num_topics):
        conc = pyro.param("topic_conc", torch.ones(num_topics, vocab), constraint=constraints.positive)
        pyro.sample("topic_words", dist.Dirichlet(conc))
    with pyro.plate("documents", docs.shape[0]):
        out = encoder(docs)
        loc = out[:, :num_topics]
        scale = F.softplus(out[:, num_topics:]) + 1e-3
        pyro.sample("logtheta", dist.Normal(loc, scale).to_event(1))
"""
    model = compile_source(source)
    guide = model.function("guide")
    docs = dist.Multinomial(12, torch.ones(12) / 12).sample((5,))
    losses = _svi(model, guide, docs, steps=5)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert any(k.startswith("encoder$$$") for k in pyro.get_param_store())


def test_autonormal_svi_matches_native_losses():
    source, native, args = CASES["logistic"]
    program = compile_source(source)
    a = _svi(native, AutoNormal(native), *args)
    b = _svi(program, AutoNormal(program), *args)
    assert a == pytest.approx(b, rel=1e-5)


def test_jit_elbo_runs_interpreted_model():
    source, _, args = CASES["logistic"]  # JIT ELBOs take tensor arguments only
    program = compile_source(source)
    losses = _svi(
        program, AutoNormal(program), *args, elbo=pyro.infer.JitTrace_ELBO(), steps=3
    )
    assert all(torch.isfinite(torch.tensor(losses)))


def test_predictive_with_interpreted_model():
    source, _, args = CASES["eight_schools"]
    program = compile_source(source)
    guide = AutoNormal(program)
    _svi(program, guide, *args, steps=2)
    samples = pyro.infer.Predictive(program, guide=guide, num_samples=7)(*args[:2])
    assert samples["obs"].shape == (7, 8) and samples["theta"].shape == (7, 8)
