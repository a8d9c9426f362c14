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
