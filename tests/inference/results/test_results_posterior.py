"""Posterior draws, predictive draws, summaries and prediction on new data."""

from __future__ import annotations

import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro.infer.autoguide import AutoDiagonalNormal, AutoNormal
from results_models import (
    EIGHT,
    conjugate_data,
    conjugate_guide,
    conjugate_model,
    conjugate_posterior,
    eight_schools,
    gmm,
    gmm_data,
    gmm_fixed_guide,
    random_effects,
    regression,
    regression_data,
    train,
)

from inference.results import (
    draw_posterior,
    param_store_safetensors,
    predict_from_params,
    summarize,
)


@pytest.mark.parametrize("parallel", [None, False], ids=["vectorised", "loop"])
def test_eight_schools_draws_shapes_and_deterministic_sites(parallel):
    pyro.clear_param_store()
    guide = AutoDiagonalNormal(eight_schools)
    guide(**EIGHT)
    num = 64 if parallel is None else 6
    samples, predictive = draw_posterior(eight_schools, guide, EIGHT, num, predictive=True, parallel=parallel)
    assert {k: v.shape for k, v in samples.items()} == {
        "mu": (num,), "tau": (num,), "theta_tilde": (num, 8), "theta": (num, 8)
    }
    np.testing.assert_allclose(
        samples["theta"], samples["mu"][:, None] + samples["tau"][:, None] * samples["theta_tilde"], rtol=1e-5, atol=1e-5
    )
    assert np.all(samples["tau"] > 0)
    assert predictive["obs"].shape == (num, 8)
    assert not np.allclose(predictive["obs"], EIGHT["y"].numpy())  # resampled, not the data
    _, none = draw_posterior(eight_schools, guide, EIGHT, 4)
    assert none == {}
    pyro.clear_param_store()


def test_posterior_and_predictive_match_the_conjugate_answer():
    data = conjugate_data()
    mean, sd = conjugate_posterior(data["y"])
    pyro.set_rng_seed(0)
    samples, predictive = draw_posterior(conjugate_model, conjugate_guide(), data, 4000, predictive=True, batch_size=1500)
    assert samples["mu"].shape == (4000,)
    assert samples["mu"].mean() == pytest.approx(mean, abs=4 * sd / np.sqrt(4000))
    assert samples["mu"].std() == pytest.approx(sd, rel=0.06)
    obs = predictive["obs"]
    assert obs.shape == (4000, 20)
    # y_new | x ~ Normal(mean, sqrt(1 + sd^2)) for every data point
    assert obs.mean() == pytest.approx(mean, abs=0.05)
    assert obs.std() == pytest.approx(np.sqrt(1 + sd**2), rel=0.03)


def test_enumerated_mixture_draws_assignments_from_their_posterior():
    data = gmm_data()
    guide = gmm_fixed_guide(weights=(0.5, 0.5), locs=(-3.0, 3.0))
    pyro.set_rng_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the mixture indexes locs[assignment]: not vectorisable
        samples, predictive = draw_posterior(gmm, guide, data, 30, predictive=True)
    assert samples["assignment"].shape == (30, 24)
    assert set(np.unique(samples["assignment"])) <= {0, 1}
    truth = (data["x"].numpy() > 0).astype(int)
    assert (samples["assignment"] == truth).mean() > 0.95
    assert samples["locs"].shape == (30, 2) and samples["weights"].shape == (30, 2)
    assert predictive["x"].shape == (30, 24)


def test_summarize_scalars_vectors_and_quantiles():
    rng = np.random.default_rng(0)
    samples = {"a": rng.normal(size=500), "b": rng.normal(size=(500, 3, 2)), "c": torch.arange(10.0)}
    summary = summarize(samples)
    a = summary["a"]
    assert set(a) == {"mean", "sd", "q05", "q50", "q95"}
    assert all(isinstance(v, float) for v in a.values())
    assert a["mean"] == pytest.approx(samples["a"].mean())
    assert a["sd"] == pytest.approx(samples["a"].std(ddof=1))
    assert a["q05"] < a["q50"] < a["q95"]
    b = summary["b"]
    assert np.asarray(b["mean"]).shape == (3, 2) and np.asarray(b["q95"]).shape == (3, 2)
    np.testing.assert_allclose(b["q50"], np.median(samples["b"], axis=0))
    assert summary["c"]["q50"] == pytest.approx(4.5)


def test_predict_on_new_data_with_global_latents():
    pyro.clear_param_store()
    data = regression_data()
    guide = AutoNormal(regression)
    train(regression, guide, data, steps=150, lr=0.1)
    median = {k: float(v) for k, v in guide.median(**data).items()}
    state = param_store_safetensors()
    pyro.clear_param_store()

    new_x = torch.tensor([-1.0, 0.0, 0.5, 2.0, 3.0, 4.0, 5.0])
    pyro.set_rng_seed(0)
    out = predict_from_params(regression, AutoNormal, state, {"x": new_x}, 2000)
    assert out["y"].shape == (2000, 7)
    assert out["slope"].shape == (2000,)
    expected = median["slope"] * new_x.numpy() + median["intercept"]
    np.testing.assert_allclose(out["y"].mean(0), expected, atol=0.08)
    # with observed y for the new x, the observed site is still resampled
    out = predict_from_params(regression, AutoNormal, state, {"x": new_x, "y": torch.zeros(7)}, 100, return_sites=["y"])
    assert set(out) == {"y"} and out["y"].std() > 0.1
    pyro.clear_param_store()


def test_predict_with_local_latents_draws_them_from_the_prior():
    pyro.clear_param_store()
    data = regression_data(n=12)
    guide = AutoNormal(random_effects)
    train(random_effects, guide, data, steps=50, lr=0.1)
    state = param_store_safetensors()
    pyro.clear_param_store()
    new = {"x": torch.linspace(0, 1, 5)}
    pyro.set_rng_seed(0)
    with pytest.warns(UserWarning, match="offset"):
        out = predict_from_params(random_effects, AutoNormal, state, new, 200)
    assert out["offset"].shape == (200, 5) and out["y"].shape == (200, 5)
    assert out["offset"].std() == pytest.approx(0.1, rel=0.2)  # prior scale of the local offset
    explicit = predict_from_params(random_effects, AutoNormal, state, new, 50, local_sites=["offset"])
    assert explicit["y"].shape == (50, 5)
    pyro.clear_param_store()


def test_a_model_that_batches_wrongly_is_drawn_one_at_a_time():
    from results_models import batch_unsafe, batch_unsafe_guide

    data = {"x": torch.linspace(0, 1, 6), "y": torch.linspace(0, 1, 6)}
    with pytest.warns(UserWarning, match="one at a time"):
        samples, predictive = draw_posterior(batch_unsafe, batch_unsafe_guide, data, 8, predictive=True)
    np.testing.assert_allclose(samples["mean"], samples["w"][:, None] * data["x"].numpy()[None, :], rtol=1e-5, atol=1e-6)
    assert predictive["y"].shape == (8, 6)


def test_zero_draws_give_empty_results():
    assert draw_posterior(conjugate_model, conjugate_guide(), conjugate_data(), 0, predictive=True) == ({}, {})
