"""The job spec: the issue's example body validates; errors name the field."""

import pytest
from pydantic import ValidationError

from inference.spec import (
    AutoGuideSpec, CatalogModelSpec, GuideListSpec, JobSpec, SourceGuideSpec, SourceModelSpec,
)

ISSUE_BODY = {
    "model": {"catalog": "eight_schools_noncentered"},
    "guide": {"auto": "AutoNormal", "options": {"init_scale": 0.1}, "hide": [], "expose": None},
    "inference": {"elbo": {"name": "Trace_ELBO", "num_particles": 1},
                  "optimizer": {"name": "Adam", "lr": 0.01},
                  "steps": 2000, "seed": 0, "device": "cpu", "jit": False, "stop": None},
    "outputs": {"num_samples": 1000, "predictive": False, "log_probs": True},
}


def test_the_issue_body_validates_as_is():
    spec = JobSpec.model_validate(ISSUE_BODY)
    assert isinstance(spec.model, CatalogModelSpec) and isinstance(spec.guide, AutoGuideSpec)
    assert spec.inference.steps == 2000 and spec.version == 1
    source = JobSpec.model_validate({**ISSUE_BODY, "model": {"source": "def model(): pass", "entry": "model"},
                                     "guide": {"source": "def guide(): pass", "entry": "guide"}})
    assert isinstance(source.model, SourceModelSpec) and isinstance(source.guide, SourceGuideSpec)
    assert JobSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_defaults_a_pyro_user_expects():
    spec = JobSpec.model_validate({"model": {"catalog": "x"}})
    assert spec.guide.auto == "AutoNormal"
    # num_particles None: 1 on Pyro's path, chosen from the model size on the fast path
    assert spec.inference.elbo.name == "Trace_ELBO" and spec.inference.elbo.num_particles is None
    assert spec.inference.stop == "auto" and spec.inference.fast_path == "auto"
    assert spec.inference.optimizer.name == "Adam" and spec.inference.optimizer.lr == 0.01
    assert spec.inference.steps == 1000 and spec.inference.validate is True
    assert spec.outputs.num_samples == 1000 and spec.outputs.log_probs is True


def _error_locs(body):
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(body)
    return [".".join(str(p) for p in e["loc"]) for e in info.value.errors()], str(info.value)


@pytest.mark.parametrize("patch,where", [
    ({"inference": {"steps": 0}}, "inference.steps"),
    ({"inference": {"elbo": {"num_particles": 10**6}}}, "inference.elbo.num_particles"),
    ({"inference": {"elbo": {"name": "Nope_ELBO"}}}, "inference.elbo.name"),
    ({"inference": {"optimizer": {"lr": -1}}}, "inference.optimizer.lr"),
    ({"inference": {"device": "tpu"}}, "inference.device"),
    ({"inference": {"jit": "sometimes"}}, "inference.jit"),
    ({"outputs": {"num_samples": 0}}, "outputs.num_samples"),
    ({"surprise": 1}, "surprise"),
    ({"version": 2}, "version"),
    ({"guide": {"auto": "AutoNormal", "optionz": {}}}, "guide.auto.optionz"),
])
def test_errors_name_the_field(patch, where):
    locs, _ = _error_locs({"model": {"catalog": "x"}, **patch})
    assert any(loc.startswith(where) for loc in locs), locs


def test_one_of_shapes_get_a_clear_message():
    _, text = _error_locs({"model": {"catalog": "x", "source": "y"}})
    assert 'exactly one of the two' in text
    _, text = _error_locs({"model": {"catalog": "x"}, "guide": {"auto": "AutoNormal", "source": "s"}})
    assert '"auto"' in text and "exactly one" in text
    _, text = _error_locs({"model": {"catalog": "x"}, "guide": {"auto": "AutoNormal", "hide": ["a"], "expose": ["b"]}})
    assert "either hide or expose" in text
    _, text = _error_locs({"model": {"catalog": "x"}, "inference": {"elbo": {"name": "TraceTailAdaptive_ELBO"}}})
    assert "num_particles" in text
    _, text = _error_locs({"model": {"catalog": "x"}, "inference": {"scheduler": {"name": "exponential"}}})
    assert "gamma" in text


def test_guide_list():
    spec = JobSpec.model_validate({"model": {"catalog": "x"}, "guide": {"list": [
        {"auto": "AutoDelta", "expose": ["tau"]}, {"auto": "AutoNormal", "hide": ["tau"]}]}})
    assert isinstance(spec.guide, GuideListSpec) and len(spec.guide.list) == 2
