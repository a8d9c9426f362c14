"""``inference.fit`` end to end: catalog and source models through the model language."""

import json
import math

import numpy as np
import pytest
import pyro

from inference import JobSpec, catalog, fit
from inference.fitting import FitCallbacks, FitCancelled, SpecError, ValidationFailed, predict, validate

SOURCE = """
import pyro
import pyro.distributions as dist

def model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)

def guide(y):
    loc = pyro.param("loc", torch.tensor(0.0))
    scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    pyro.sample("mu", dist.Normal(loc, scale))

def bad_guide(y):
    pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.sample("nu", dist.Normal(0.0, 1.0))
"""
Y = np.array([1.2, 0.8, 1.9, 1.4, 0.6, 1.1])


def body(**inference):
    return {"model": {"catalog": "eight_schools_noncentered"},
            "guide": {"auto": "AutoNormal", "options": {"init_scale": 0.1}},
            "inference": {"steps": 150, "seed": 0, "progress_every_steps": 50, "progress_every_s": 1e6,
                          **inference},
            "outputs": {"num_samples": 200, "log_prob_draws": 200, "elbo_terms_every": 50,
                        "elbo_terms_particles": 16, "grad_norms_every": 50}}


def test_catalog_eight_schools_end_to_end():
    seen = []
    result = fit(JobSpec.model_validate(body()), {}, callbacks=FitCallbacks(on_progress=seen.append))
    assert len(result.loss) == 150 and all(math.isfinite(x) for x in result.loss)
    assert [p.step for p in seen] == [50, 100, 150]
    assert set(result.summary["mu"]) == {"mean", "sd", "q05", "q50", "q95"}
    assert result.samples["theta"].shape == (200, 8) and result.samples["tau"].shape == (200,)
    assert set(result.guide_params) == {f"AutoNormal.{k}.{s}" for k in ("locs", "scales")
                                        for s in ("mu", "tau", "theta_tilde")}
    assert result.model_params == {}
    assert [t["step"] for t in result.elbo_terms] == [50, 100, 150]
    assert [g["step"] for g in result.grad_norms] == [50, 100, 150]
    d = result.diagnostics
    assert d["k_hat"] is not None and d["k_hat_reading"] and isinstance(d["converged"], bool)
    assert d["validation"]["ok"] is True
    meta = result.meta
    assert meta["steps_done"] == 150 and meta["seed"] == 0 and meta["device"] == "cpu"
    assert meta["effective"]["max_plate_nesting"] == 1 and meta["effective"]["elbo"] == "Trace_ELBO"
    assert {"torch", "pyro", "vihub"} <= set(meta["versions"])
    json.dumps(result.to_json())
    assert len(pyro.get_param_store()) == 0  # cleared at the end


def test_same_seed_same_losses_and_jit_auto():
    a = fit(body(steps=40), {})
    b = fit(body(steps=40), {})
    assert a.loss == b.loss
    jit = fit(body(steps=40, jit="auto", fast_path=False), {})
    assert jit.diagnostics["jit"]["used"] is True
    plain = fit(body(steps=40, fast_path=False), {})
    assert jit.loss == pytest.approx(plain.loss, rel=1e-4)
    assert a.diagnostics["fast_path"]["taken"] is True and plain.diagnostics["fast_path"]["taken"] is False


def test_source_model_with_custom_guide_and_predict():
    spec = {"model": {"source": SOURCE, "entry": "model"}, "guide": {"source": SOURCE, "entry": "guide"},
            "inference": {"steps": 300, "optimizer": {"lr": 0.05}},
            "outputs": {"num_samples": 300, "log_prob_draws": 300, "elbo_terms_every": 0}}
    result = fit(spec, {"y": Y})
    precision = 1 / 100 + len(Y)
    assert abs(result.summary["mu"]["mean"] - Y.sum() / precision) < 0.15
    assert set(result.guide_params) == {"loc", "scale"}
    draws = predict(result, spec, {"y": np.zeros(3)}, num_samples=50)
    assert draws["obs"].shape[0] == 50 and draws["obs"].shape[-1] == 3


def test_validation_failure_stops_the_fit_with_the_report():
    spec = {"model": {"source": SOURCE, "entry": "model"}, "guide": {"source": SOURCE, "entry": "bad_guide"},
            "inference": {"steps": 10}}
    report = validate(spec, {"y": Y})
    assert not report.ok and [(m.code, m.site) for m in report.errors] == [("not_in_model", "nu")]
    with pytest.raises(ValidationFailed) as info:
        fit(spec, {"y": Y})
    assert info.value.report.errors[0].site == "nu"


def test_cancel_and_spec_errors():
    with pytest.raises(FitCancelled):
        fit(body(steps=100), {}, callbacks=FitCallbacks(should_cancel=lambda: True))
    with pytest.raises(SpecError) as info:
        fit({**body(), "guide": {"auto": "AutoNormal", "options": {"rank": 2}}}, {})
    assert info.value.field == "guide.options.rank"
    assert len(pyro.get_param_store()) == 0


def test_resume_through_fit():
    blobs = []
    spec = body(steps=60, checkpoint_every_s=1e-9, progress_every_steps=20)
    full = fit(spec, {}, callbacks=FitCallbacks(on_checkpoint=lambda blob, step: blobs.append(blob)))
    resumed = fit(spec, {}, resume_from=blobs[0])
    assert resumed.meta["resumed_from_step"] == 20
    assert resumed.loss == full.loss
    for name, entry in full.guide_params.items():
        assert entry["value"] == resumed.guide_params[name]["value"], name
    # A checkpoint of another job (here: another seed) is refused, naming resume_from,
    # which the worker reads to start over instead of failing.
    with pytest.raises(SpecError) as info:
        fit({**spec, "inference": {**spec["inference"], "seed": 1}}, {}, resume_from=blobs[0])
    assert info.value.details["field"] == "resume_from"


def test_without_validation_and_with_auto_device():
    result = fit(body(steps=20, validate=False, device="auto"), {})
    codes = [w["code"] for w in result.diagnostics["warnings"]]
    assert "validation_skipped" in codes and result.diagnostics["validation"] is None
    assert result.meta["device"] in ("cpu", "cuda:0", "cuda")


def test_mean_field_pitfall_is_reported_even_without_validation():
    spec = body(steps=20, validate=False, elbo={"name": "TraceMeanField_ELBO"})
    result = fit(spec, {})
    notes = [w for w in result.diagnostics["warnings"] if w["code"] == "mean_field_jacobian"]
    assert len(notes) == 1 and "'tau'" in notes[0]["message"]
    assert result.meta["effective"]["elbo"] == "TraceMeanFieldJacobian_ELBO"


def test_float64_jobs_run_models_with_float_constants():
    """float64 data meets the model's float constants (``X @ beta``): fit must switch dtype."""
    import torch

    data = catalog.get("logistic_regression").example_data
    result = fit({"model": {"catalog": "logistic_regression"},
                  "inference": {"steps": 5, "float_dtype": "float64"},
                  "outputs": {"num_samples": 10, "elbo_terms_every": 0, "grad_norms_every": 0}}, data)
    assert all(np.isfinite(result.loss))
    assert next(iter(result.samples.values())).dtype == np.float64
    assert torch.get_default_dtype() == torch.float32  # restored after the fit


def test_language_limits_apply_inside_fit():
    from inference.language import Limits, ModelLanguageError

    source = ("import pyro\nimport pyro.distributions as dist\n\n"
              "def model(y):\n"
              "    mu = pyro.sample('mu', dist.Normal(0.0, 1.0))\n"
              "    for i in range(50):\n"
              "        pyro.sample(f'obs_{i}', dist.Normal(mu, 1.0), obs=y[i])\n")
    with pytest.raises(ModelLanguageError) as info:
        fit({"model": {"source": source}, "inference": {"steps": 2}},
            {"y": np.zeros(50)}, limits=Limits(max_loop_iterations=10))
    assert info.value.kind == "limit-exceeded"
