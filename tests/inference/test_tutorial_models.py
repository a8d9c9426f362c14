"""Models from Pyro's tutorials and examples, written as their authors wrote them
(only the data they take is ours), compiled by the model language and trained with
plain Pyro.

- the beta-Bernoulli coin with its hand-written guide (SVI tutorial, part I);
- the Gaussian mixture with ``@config_enumerate`` and a guide
  ``AutoDelta(poutine.block(model, expose=[...]))`` (GMM tutorial);
- LDA with an amortized MLP guide (``examples/lda.py``, shrunk to a small size).

Deviations from the originals, each forced by a model arriving as a source text: import
lines the source does not need (``math``, ``os``, optimizers) are dropped and
``constraints`` is imported as ``from torch.distributions import constraints``; in the
LDA example the ``args`` namespace becomes module-level constants, ``pyro.param``
initial values are tensors instead of lambdas, the MLP is built at module level
instead of by a factory function, and the jit-only shape assertion is dropped.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO
from pyro.infer.autoguide import AutoDelta
from pyro.optim import Adam, ClippedAdam

COIN_SOURCE = """
import torch
import pyro
import pyro.distributions as dist
from torch.distributions import constraints


def model(data):
    # define the hyperparameters that control the Beta prior
    alpha0 = torch.tensor(10.0)
    beta0 = torch.tensor(10.0)
    # sample f from the Beta prior
    f = pyro.sample("latent_fairness", dist.Beta(alpha0, beta0))
    # loop over the observed data
    for i in range(len(data)):
        # observe datapoint i using the Bernoulli likelihood
        pyro.sample("obs_{}".format(i), dist.Bernoulli(f), obs=data[i])


def guide(data):
    # register the two variational parameters with Pyro
    # - both parameters will have initial value 15.0.
    # - because we invoke constraints.positive, the optimizer
    # will take gradients on the unconstrained parameters
    # (which are related to the constrained parameters by a log)
    alpha_q = pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    beta_q = pyro.param("beta_q", torch.tensor(15.0), constraint=constraints.positive)
    # sample latent_fairness from the distribution Beta(alpha_q, beta_q)
    pyro.sample("latent_fairness", dist.Beta(alpha_q, beta_q))
"""

GMM_SOURCE = """
import torch
import pyro
import pyro.distributions as dist
from pyro.infer import config_enumerate

K = 2  # Fixed number of components.


@config_enumerate
def model(data):
    # Global variables.
    weights = pyro.sample('weights', dist.Dirichlet(0.5 * torch.ones(K)))
    scale = pyro.sample('scale', dist.LogNormal(0., 2.))
    with pyro.plate('components', K):
        locs = pyro.sample('locs', dist.Normal(0., 10.))

    with pyro.plate('data', len(data)):
        # Local variables.
        assignment = pyro.sample('assignment', dist.Categorical(weights))
        pyro.sample('obs', dist.Normal(locs[assignment], scale), obs=data)
"""

LDA_SOURCE = """
import torch
import torch.nn as nn
import pyro
import pyro.distributions as dist
from torch.distributions import constraints

NUM_TOPICS = 3
NUM_WORDS = 20
NUM_DOCS = 16
NUM_WORDS_PER_DOC = 12
BATCH_SIZE = 8

# make_predictor() with layer sizes [NUM_WORDS, 16, NUM_TOPICS]
predictor = nn.Sequential(
    nn.Linear(NUM_WORDS, 16),
    nn.Sigmoid(),
    nn.Linear(16, NUM_TOPICS),
    nn.Sigmoid(),
    nn.Softmax(dim=-1),
)


# This is a fully generative model of a batch of documents.
# data is a [num_words_per_doc, num_documents] shaped array of word ids
# (specifically it is not a histogram). We assume in this simple example
# that all documents have the same number of words.
def model(data=None):
    # Globals.
    with pyro.plate("topics", NUM_TOPICS):
        topic_weights = pyro.sample("topic_weights", dist.Gamma(1.0 / NUM_TOPICS, 1.0))
        topic_words = pyro.sample(
            "topic_words", dist.Dirichlet(torch.ones(NUM_WORDS) / NUM_WORDS)
        )

    # Locals.
    with pyro.plate("documents", NUM_DOCS) as ind:
        if data is not None:
            data = data[:, ind]
        doc_topics = pyro.sample("doc_topics", dist.Dirichlet(topic_weights))
        with pyro.plate("words", NUM_WORDS_PER_DOC):
            # The word_topics variable is marginalized out during inference,
            # achieved by specifying infer={"enumerate": "parallel"} and using
            # TraceEnum_ELBO for inference. Thus we can ablate the word_topics
            # variable and compute log-likelihood directly.
            word_topics = pyro.sample(
                "word_topics",
                dist.Categorical(doc_topics),
                infer={"enumerate": "parallel"},
            )
            data = pyro.sample(
                "doc_words", dist.Categorical(topic_words[word_topics]), obs=data
            )

    return topic_weights, topic_words, data


# This is an amortized guide: a neural network maps each document's word
# histogram to its topic proportions.
def guide(data):
    # Use a conjugate guide for global variables.
    topic_weights_posterior = pyro.param(
        "topic_weights_posterior",
        torch.ones(NUM_TOPICS),
        constraint=constraints.positive,
    )
    topic_words_posterior = pyro.param(
        "topic_words_posterior",
        torch.ones(NUM_TOPICS, NUM_WORDS),
        constraint=constraints.greater_than(0.5),
    )
    with pyro.plate("topics", NUM_TOPICS):
        pyro.sample("topic_weights", dist.Gamma(topic_weights_posterior, 1.0))
        pyro.sample("topic_words", dist.Dirichlet(topic_words_posterior))

    # Use an amortized guide for local variables.
    pyro.module("predictor", predictor)
    with pyro.plate("documents", NUM_DOCS, BATCH_SIZE) as ind:
        data = data[:, ind]
        # The neural network will operate on histograms rather than word
        # index vectors, so we'll convert the raw data to a histogram.
        counts = torch.zeros(NUM_WORDS, ind.size(0)).scatter_add(
            0, data, torch.ones(data.shape)
        )
        doc_topics = predictor(counts.transpose(0, 1))
        pyro.sample("doc_topics", dist.Delta(doc_topics, event_dim=1))
"""


def language():
    import inference.language as lang

    return lang


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()
    pyro.enable_validation(True)


def compile_with_data(source: str, entry: str, data: dict):
    lang = language()
    program = lang.compile_source(source, entry)
    bound = lang.bind_data(program, data)
    assert bound.warnings == []
    return program, bound.kwargs


# ---------------------------------------------------------------- SVI part I: the coin


def test_coin_posterior_mean_matches_closed_form():
    heads, tails = 8, 2
    data = {"data": np.array([1.0] * heads + [0.0] * tails)}
    model, kwargs = compile_with_data(COIN_SOURCE, "model", data)
    guide, _ = compile_with_data(COIN_SOURCE, "guide", data)

    trace = poutine.trace(model).get_trace(**kwargs)
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample"] == [
        "latent_fairness"
    ] + [f"obs_{i}" for i in range(heads + tails)]
    guide_trace = poutine.trace(guide).get_trace(**kwargs)
    assert guide_trace.nodes["alpha_q"]["value"].item() == pytest.approx(15.0)

    pyro.set_rng_seed(0)
    pyro.enable_validation(False)  # training speed, as the service trains
    svi = SVI(
        model, guide, Adam({"lr": 0.05, "betas": (0.90, 0.999)}), loss=Trace_ELBO()
    )
    steps, inferred_means = 400, []
    for step in range(steps):
        svi.step(**kwargs)
        if step >= steps // 2:  # average the iterates: the single last one is noisy
            alpha_q, beta_q = pyro.param("alpha_q").item(), pyro.param("beta_q").item()
            inferred_means.append(alpha_q / (alpha_q + beta_q))
    inferred_mean = sum(inferred_means) / len(inferred_means)

    # Beta(10, 10) prior, conjugate update: Beta(10 + heads, 10 + tails).
    exact_mean = (10.0 + heads) / (20.0 + heads + tails)
    assert exact_mean == pytest.approx(0.6)
    # The guide starts at mean 0.5: landing within 0.02 of 0.6 needs the fit to work.
    assert inferred_mean == pytest.approx(exact_mean, abs=0.02)


# ---------------------------------------------------------------- the GMM tutorial


def test_gmm_recovers_component_means():
    generator = torch.Generator().manual_seed(0)
    data = torch.cat(
        [
            torch.randn(40, generator=generator),
            10.0 + torch.randn(60, generator=generator),
        ]
    )
    model, kwargs = compile_with_data(
        GMM_SOURCE, "model", {"data": data.numpy().astype(np.float64)}
    )
    data = kwargs["data"]
    K = 2

    def init_loc_fn(site):  # the tutorial's initialisation
        if site["name"] == "weights":
            # Initialize weights to uniform.
            return torch.ones(K) / K
        if site["name"] == "scale":
            return (data.var() / 2).sqrt()
        if site["name"] == "locs":
            return data[torch.multinomial(torch.ones(len(data)) / len(data), K)]
        raise ValueError(site["name"])

    pyro.set_rng_seed(1)
    guide = AutoDelta(
        poutine.block(model, expose=["weights", "locs", "scale"]),
        init_loc_fn=init_loc_fn,
    )
    optim = pyro.optim.Adam({"lr": 0.1, "betas": [0.8, 0.99]})
    svi = SVI(model, guide, optim, loss=TraceEnum_ELBO(max_plate_nesting=1))
    losses = [svi.step(**kwargs) for _ in range(200)]
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]

    map_estimates = guide(**kwargs)
    locs, order = torch.sort(map_estimates["locs"].detach())
    weights = map_estimates["weights"].detach()[order]
    torch.testing.assert_close(locs, torch.tensor([0.0, 10.0]), atol=0.5, rtol=0.0)
    torch.testing.assert_close(weights, torch.tensor([0.4, 0.6]), atol=0.1, rtol=0.0)
    assert 0.5 < map_estimates["scale"].item() < 2.0


# ---------------------------------------------------------------- LDA with an MLP guide


def test_lda_with_mlp_guide_trains():
    num_topics, num_words, num_docs, words_per_doc = 3, 20, 16, 12
    generator = torch.Generator().manual_seed(0)
    # Documents drawn from three disjoint-ish vocabularies, one topic per document.
    doc_topic = torch.arange(num_docs) % num_topics
    word_ids = doc_topic * 6 + torch.randint(
        0, 8, (words_per_doc, num_docs), generator=generator
    )
    data = {"data": word_ids.clamp(max=num_words - 1).numpy()}
    model, kwargs = compile_with_data(LDA_SOURCE, "model", data)
    guide, _ = compile_with_data(LDA_SOURCE, "guide", data)
    assert kwargs["data"].dtype == torch.int64

    elbo = TraceEnum_ELBO(max_plate_nesting=2)
    # The model alone is also a generator of documents (lda.py's main() uses it so).
    _, _, generated = model()
    assert generated.shape == (words_per_doc, num_docs)

    guide_trace = poutine.trace(guide).get_trace(**kwargs)
    assert guide_trace.nodes["documents"]["value"].shape == (8,)  # subsampled
    assert guide_trace.nodes["doc_topics"]["value"].shape == (8, num_topics)
    predictor_params = [n for n in guide_trace.nodes if n.startswith("predictor$$$")]
    assert len(predictor_params) == 4  # two Linear layers: weight and bias each

    pyro.set_rng_seed(0)
    svi = SVI(model, guide, ClippedAdam({"lr": 0.01}), elbo)
    before = {n: pyro.param(n).detach().clone() for n in predictor_params}
    losses = [svi.step(**kwargs) for _ in range(30)]
    assert all(math.isfinite(loss) for loss in losses), losses
    assert all(not torch.equal(before[n], pyro.param(n)) for n in predictor_params)
