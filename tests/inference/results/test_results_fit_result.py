"""FitResult: JSON round trip and the binary forms opened with their own readers."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro.infer.autoguide import AutoNormal
from results_models import EIGHT, eight_schools, train

from inference.results import (
    FitResult,
    draw_posterior,
    importance_diagnostics,
    load_param_store_safetensors,
    param_store_safetensors,
    split_params,
    summarize,
    trace_log_probs,
)


@pytest.fixture(scope="module")
def result() -> FitResult:
    pyro.clear_param_store()
    guide = AutoNormal(eight_schools)
    train(eight_schools, guide, EIGHT, steps=20)
    guide_params, model_params = split_params(eight_schools, guide, EIGHT)
    samples, predictive = draw_posterior(eight_schools, guide, EIGHT, 50, predictive=True)
    log_probs = trace_log_probs(eight_schools, guide, EIGHT, 40)
    report = importance_diagnostics(log_probs["log_weight"])
    out = FitResult(
        guide_params=guide_params,
        model_params=model_params,
        loss=[10.5, 9.25, float("nan")],
        elbo_terms=[{"step": 0, "elbo": -40.0, "reconstruction": {"obs": -30.0}, "kl": {"mu": -10.0}}],
        grad_norms=[{"step": 0, "norms": {"AutoNormal.locs.mu": 0.5}}],
        samples=samples,
        predictive=predictive,
        summary=summarize(samples),
        log_probs=log_probs,
        diagnostics={**report, "warnings": ["w"], "converged": False, "nan_events": [], "validation": {"ok": True}},
        param_store_state=param_store_safetensors(),
        meta={"versions": {"pyro": pyro.__version__, "torch": torch.__version__, "vihub": "0.1.0"}, "seed": 0},
    )
    pyro.clear_param_store()
    return out


def test_to_json_is_strict_json_and_round_trips(result):
    data = result.to_json()
    text = json.dumps(data, allow_nan=False)  # no NaN / Infinity tokens
    back = FitResult.from_json(json.loads(text))
    assert back.to_json() == data
    for name, value in result.samples.items():
        assert back.samples[name].dtype == value.dtype and back.samples[name].shape == value.shape
        np.testing.assert_array_equal(back.samples[name], value)
    np.testing.assert_array_equal(back.log_probs["log_weight"], result.log_probs["log_weight"])
    np.testing.assert_array_equal(back.log_probs["pointwise"]["obs"], result.log_probs["pointwise"]["obs"])
    assert back.param_store_state == result.param_store_state
    assert back.guide_params == result.guide_params and back.summary == result.summary
    assert np.isnan(back.loss[2]) and back.loss[:2] == [10.5, 9.25]  # nan -> null -> nan


def test_samples_and_log_probs_npz(result):
    samples = np.load(io.BytesIO(result.samples_npz()))
    assert set(samples.files) == {"mu", "tau", "theta_tilde", "theta", "predictive/obs"}
    np.testing.assert_array_equal(samples["theta"], result.samples["theta"])
    log_probs = np.load(io.BytesIO(result.log_probs_npz()))
    assert {"log_joint", "log_q", "log_weight", "model_sites/obs", "guide_sites/mu", "pointwise/obs"} <= set(log_probs.files)
    np.testing.assert_array_equal(log_probs["log_weight"], result.log_probs["log_weight"])


def test_params_safetensors_holds_constrained_values_and_the_split(result, tmp_path):
    from safetensors import safe_open

    path = tmp_path / "params.safetensors"
    path.write_bytes(result.params_safetensors())
    with safe_open(str(path), framework="np") as fh:
        metadata = fh.metadata()
        scales = fh.get_tensor("AutoNormal.scales.theta_tilde")
        assert set(fh.keys()) == set(result.guide_params) | set(result.model_params)
    np.testing.assert_allclose(scales, result.guide_params["AutoNormal.scales.theta_tilde"]["value"])
    assert np.all(scales > 0)
    assert json.loads(metadata["vihub.constraints"])["AutoNormal.scales.theta_tilde"] == "softplus_positive"
    assert set(json.loads(metadata["vihub.guide_params"])) == set(result.guide_params)
    assert json.loads(metadata["vihub.roles"])["AutoNormal.locs.mu"] == "guide"


def test_param_store_pt_is_loadable_by_pyro(result, tmp_path):
    path = tmp_path / "store.pt"
    path.write_bytes(result.param_store_pt())
    pyro.clear_param_store()
    pyro.get_param_store().load(str(path))
    store = pyro.get_param_store()
    expected = load_param_store_safetensors(result.param_store_state)
    assert set(store.keys()) == set(expected["params"])
    for name, unconstrained in expected["params"].items():
        constrained = torch.distributions.transform_to(expected["constraints"][name])(unconstrained.detach())
        assert torch.allclose(store[name].detach(), constrained)
    # and the constrained values are the ones reported in guide_params
    np.testing.assert_allclose(
        store["AutoNormal.scales.mu"].detach().numpy(), result.guide_params["AutoNormal.scales.mu"]["value"], rtol=1e-6
    )
    pyro.clear_param_store()


def test_to_netcdf_opens_with_xarray_and_arviz(result, tmp_path):
    import xarray as xr

    path = tmp_path / "fit.nc"
    path.write_bytes(result.to_netcdf())
    posterior = xr.open_dataset(path, group="posterior", engine="h5netcdf")
    assert posterior["theta"].shape == (1, 50, 8) and posterior["mu"].dims[:2] == ("chain", "draw")
    np.testing.assert_allclose(posterior["mu"].values[0], result.samples["mu"])
    stats = xr.open_dataset(path, group="sample_stats", engine="h5netcdf")
    np.testing.assert_allclose(stats["lp"].values[0], result.log_probs["log_joint"])
    np.testing.assert_allclose(stats["log_weight"].values[0], result.log_probs["log_weight"])
    loglik = xr.open_dataset(path, group="log_likelihood", engine="h5netcdf")
    assert loglik["obs"].shape == (1, 40, 8)
    predictive = xr.open_dataset(path, group="posterior_predictive", engine="h5netcdf")
    assert predictive["obs"].shape == (1, 50, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az

        idata = az.from_netcdf(str(path))
        assert {"posterior", "posterior_predictive", "log_likelihood", "sample_stats"} <= set(idata.groups())
        loo = az.loo(idata)
        assert np.isfinite(loo.elpd_loo)
