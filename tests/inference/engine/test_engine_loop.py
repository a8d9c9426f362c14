"""The run loop: reproducibility, resume, NaN detection, cancel, cadence, stop rule, JIT."""

import math

import pytest
import torch
import pyro
import pyro.distributions as dist
from pyro.infer.autoguide import AutoNormal

from engine_models import EIGHT_SCHOOLS, eight_schools, logistic, logistic_data, spec
from inference.engine.checkpoint import load_checkpoint
from inference.engine.errors import FitCancelled, NonFiniteLoss, SpecError
from inference.engine.loop import FitCallbacks, run_svi
from inference.spec import SchedulerSpec, StopSpec


def _params():
    return {k: v.detach().clone() for k, v in pyro.get_param_store().items()}


def test_same_spec_data_seed_gives_the_same_losses():
    a = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=60)).losses
    b = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=60)).losses
    c = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=60, seed=1)).losses
    assert a == b
    assert a != c


def test_outputs_requested_do_not_change_the_loss_curve():
    plain = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=40)).losses
    hooked = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=40),
                     grad_norms_every=7, hooks={"draw": (5, lambda step: float(torch.randn(())))})
    assert hooked.losses == plain
    assert [g["step"] for g in hooked.grad_norms] == [7, 14, 21, 28, 35]
    assert set(hooked.grad_norms[0]["norms"]) == set(pyro.get_param_store().keys())
    assert [s for s, _ in hooked.history["draw"]] == [5, 10, 15, 20, 25, 30, 35, 40]


@pytest.mark.parametrize("scheduler", [None, SchedulerSpec(name="reduce_on_plateau", patience=2, every_steps=5)])
def test_resume_from_checkpoint_equals_uninterrupted(scheduler):
    inference = spec(steps=50, checkpoint_every_s=1e-9, progress_every_steps=10, progress_every_s=1e9)
    inference = inference.model_copy(update={"scheduler": scheduler, "optimizer": inference.optimizer})
    blobs = []
    full = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, inference,
                   callbacks=FitCallbacks(on_checkpoint=lambda blob, step: blobs.append((step, blob))),
                   grad_norms_every=10)
    full_params = _params()
    assert [s for s, _ in blobs] == [10, 20, 30, 40]
    step, blob = blobs[1]
    assert b"\x80\x04" not in blob[:2] and load_checkpoint(blob).step == 20  # safetensors, not pickle
    resumed = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, inference,
                      resume_from=blob, grad_norms_every=10)
    assert resumed.resumed_from_step == 20
    assert resumed.losses == full.losses
    assert resumed.grad_norms == full.grad_norms
    for name, value in _params().items():
        assert torch.equal(value, full_params[name]), name


def test_a_checkpoint_of_another_model_is_refused():
    blobs = []
    run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
            spec(steps=20, checkpoint_every_s=1e-9, progress_every_steps=5),
            callbacks=FitCallbacks(on_checkpoint=lambda blob, step: blobs.append(blob)))
    data = logistic_data()
    with pytest.raises(SpecError, match="checkpoint does not match"):
        run_svi(logistic, AutoNormal(logistic), data, spec(steps=20), resume_from=blobs[0])
    with pytest.raises(SpecError):
        run_svi(logistic, AutoNormal(logistic), data, spec(steps=20), resume_from=b"not a checkpoint")


def _explodes(y):
    # Fitting the scale of an exact observation drives it to zero and past it (Adam's
    # steps are ~lr), where log_prob turns nan.
    s = pyro.param("s", torch.tensor(0.5))
    pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.sample("obs", dist.Normal(3.0, s), obs=y)


def _explode_guide(y):
    pyro.sample("mu", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_nan_loss_names_the_step_and_the_site():
    with pytest.raises(NonFiniteLoss) as info:
        run_svi(_explodes, _explode_guide, {"y": torch.tensor(3.0)}, spec(steps=200, lr=0.1))
    err = info.value
    assert err.kind == "non-finite-loss" and 1 < err.step < 200
    assert f"step {err.step}" in err.message
    assert err.sites == ["obs (model: non-finite log_prob)"]
    assert isinstance(err.params, list)  # params whose gradients are non-finite (none here)
    # The failing update was not applied: the param is still finite.
    assert torch.isfinite(pyro.param("s")).all()


def test_cancel_is_checked_at_the_cadence():
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) == 3

    with pytest.raises(FitCancelled) as info:
        run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
                spec(steps=100, progress_every_steps=10, progress_every_s=1e9),
                callbacks=FitCallbacks(should_cancel=should_cancel))
    assert info.value.step == 30 and len(calls) == 3


def test_progress_is_batched():
    seen = []
    run = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
                  spec(steps=95, progress_every_steps=20, progress_every_s=1e9),
                  callbacks=FitCallbacks(on_progress=seen.append))
    assert [p.step for p in seen] == [20, 40, 60, 80, 95]  # and once at the end
    assert sum(len(p.new_losses) for p in seen) == 95
    assert [s for s, _ in seen[1].new_losses] == list(range(21, 41))
    assert [l for _, l in seen[-1].new_losses] == run.losses[80:]
    last = seen[-1]
    assert last.steps == 95 and last.eta_s == 0 and last.steps_per_s > 0
    assert math.isfinite(last.smoothed_loss)


def test_progress_by_time():
    seen = []
    run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
            spec(steps=30, progress_every_steps=10**6, progress_every_s=1e-9),
            callbacks=FitCallbacks(on_progress=seen.append))
    assert len(seen) >= 29  # the clock always says "due": every step, never more often


def test_convergence_stop():
    run = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
                  spec(steps=2000, progress_every_steps=25, stop=StopSpec(rel_tol=0.05, window=50, min_steps=100)))
    assert run.stopped_early and run.converged
    assert 100 <= run.steps_done < 2000 and run.steps_done % 25 == 0


@pytest.mark.parametrize("name,extra", [
    ("exponential", {"gamma": 0.99}), ("step", {"step_size": 10, "gamma": 0.5}),
    ("cosine", {}), ("reduce_on_plateau", {"patience": 1}),
])
def test_schedulers_change_the_learning_rate(name, extra):
    run = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
                  spec(steps=30, scheduler=SchedulerSpec(name=name, **extra)))
    lrs = {opt.optimizer.param_groups[0]["lr"] for opt in run.optim.optim_objs.values()}
    assert lrs and all(lr < 0.05 for lr in lrs)


def test_jit_requested_and_auto():
    data = logistic_data()
    plain = run_svi(logistic, AutoNormal(logistic), data, spec(steps=30, fast_path=False))
    jit = run_svi(logistic, AutoNormal(logistic), data, spec(steps=30, jit=True))
    auto = run_svi(logistic, AutoNormal(logistic), data, spec(steps=30, jit="auto", fast_path=False))
    assert jit.jit_used and jit.elbo_name == "JitTrace_ELBO"
    assert auto.jit_used and not auto.diagnostics
    assert jit.losses == pytest.approx(plain.losses, rel=1e-4)
    assert auto.losses == pytest.approx(plain.losses, rel=1e-4)


def test_jit_auto_falls_back_with_a_diagnostic():
    def data_dependent(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        # A Python branch on a draw: a trace freezes whichever branch it saw.
        loc = mu if mu.item() > 0 else mu + 10.0
        pyro.sample("obs", dist.Normal(loc, 1.0), obs=y)

    run = run_svi(data_dependent, AutoNormal(data_dependent), {"y": torch.tensor(0.5)},
                  spec(steps=20, jit="auto", fast_path=False))
    assert not run.jit_used
    assert run.diagnostics and run.diagnostics[0]["code"] == "jit_fallback"
    renyi = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
                    spec(steps=5, jit="auto", elbo="RenyiELBO", particles=2, fast_path=False))
    assert renyi.diagnostics[0]["code"] == "jit_unavailable"


def test_non_finite_gradient_with_finite_loss_is_caught_at_the_cadence():
    def model(y):
        p = pyro.param("p", torch.tensor(0.0))
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(mu + torch.sqrt(p), 1.0), obs=y)  # d sqrt(p)/dp = inf at 0

    with pytest.raises(NonFiniteLoss) as info:
        run_svi(model, AutoNormal(model), {"y": torch.tensor(1.0)},
                spec(steps=20, progress_every_steps=1))
    assert info.value.step == 1 and info.value.params == ["p"]
    assert "gradient" in info.value.message
