"""inference.stop: "auto" (the default), "steps", the tolerance rule; the result says why."""

import pytest
import pyro
from pyro.infer.autoguide import AutoNormal

from engine_models import EIGHT_SCHOOLS, eight_schools, spec
from inference.engine.loop import FitCallbacks, run_svi
from inference.spec import AUTO_STOP, InferenceSpec, JobSpec, StopSpec


def test_auto_is_the_default_and_steps_is_accepted():
    assert InferenceSpec().stop == "auto"
    assert InferenceSpec(stop="steps").stop == "steps"
    assert InferenceSpec(stop=None).stop is None
    assert isinstance(InferenceSpec.model_validate({"stop": {"rel_tol": 0.01}}).stop, StopSpec)
    with pytest.raises(ValueError):
        JobSpec.model_validate({"model": {"catalog": "x"}, "inference": {"stop": "soon"}})


def test_auto_stops_eight_schools_before_the_cap_and_says_why():
    run = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=3000, lr=0.05))
    stop = run.stop
    assert stop["rule"] == "auto" and stop["reason"] == "converged" and run.stopped_early and run.converged
    assert 2 * AUTO_STOP["window"] <= run.steps_done == stop["step"] < 3000
    last = stop["last_check"]
    assert last["loss_change"] <= last["loss_tolerance"]
    assert last["loc_drift_sd"] <= AUTO_STOP["loc_drift"] and last["scale_drift"] <= AUTO_STOP["scale_drift"]


def test_steps_caps_auto_and_steps_runs_exactly():
    capped = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=150))
    assert capped.steps_done == 150 and capped.stop["reason"] == "steps" and not capped.stopped_early
    exact = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=700, stop="steps"))
    assert exact.steps_done == 700 and exact.stop["rule"] == "steps"


def test_auto_on_the_general_path_too():
    run = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS,
                  spec(steps=3000, lr=0.05, fast_path=False))
    assert not run.fast_path["taken"] and run.stop["reason"] == "converged" and run.steps_done < 3000


def test_a_scheduler_makes_auto_run_all_steps():
    run = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, spec(steps=400, decay_to=0.5))
    assert run.steps_done == 400 and run.stop["rule"] == "steps" and "scheduler" in run.stop["note"]


def test_resume_stops_where_the_uninterrupted_fit_stopped():
    inference = spec(steps=3000, lr=0.05, checkpoint_every_s=1e-9, progress_every_steps=100, progress_every_s=1e9)
    blobs = []
    full = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, inference,
                   callbacks=FitCallbacks(on_checkpoint=lambda blob, step: blobs.append((step, blob))))
    assert full.stopped_early
    step, blob = [b for b in blobs if b[0] >= 300][0]
    pyro.clear_param_store()
    resumed = run_svi(eight_schools, AutoNormal(eight_schools), EIGHT_SCHOOLS, inference, resume_from=blob)
    assert resumed.resumed_from_step == step
    assert resumed.losses == full.losses and resumed.stop == full.stop


def _scripted_stopper(monkeypatch, locs):
    """A Stopper whose guide moments follow ``locs`` (sd 1) check after check, on a flat loss."""
    import torch

    from inference.engine import stopping

    moments = iter([(torch.tensor(loc), torch.ones(len(loc))) for loc in locs])
    monkeypatch.setattr(stopping, "_gaussian_moments", lambda guide: next(moments))
    halvings = []
    stopper = stopping.Stopper("auto", guide=object(), scale_lr=halvings.append)
    gen = torch.Generator().manual_seed(0)
    w = AUTO_STOP["window"]
    losses = (10.0 + 0.1 * torch.randn(w * (len(locs) + 1), generator=gen)).tolist()
    results = [stopper.check(w * (i + 1), losses[:w * (i + 2)]) for i in range(len(locs))]
    return results, halvings, stopper.last


def test_a_steady_trend_is_not_settled_and_keeps_the_rate(monkeypatch):
    # one param creeps 0.09 sd per window towards its optimum (the loss cannot show it)
    results, halvings, last = _scripted_stopper(monkeypatch, [[0.09 * i, 0.0] for i in range(12)])
    assert results == [None] * 12 and halvings == [] and last["trending"]


def test_a_jitter_halves_the_rate(monkeypatch):
    # the params jump back and forth 0.3 sd around the optimum: only a smaller rate helps
    results, halvings, last = _scripted_stopper(monkeypatch, [[0.15 * (-1) ** i, 0.1] for i in range(12)])
    assert halvings and all(f == 0.5 for f in halvings) and not last["trending"]
