"""phi/theta split, readable constraints, and param-store files that load back."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pyro
import pyro.distributions as dist
import pyro.distributions.constraints as C
import pytest
import torch
from pyro.infer.autoguide import AutoDiagonalNormal, AutoNormal
from results_models import EIGHT, eight_schools, train

from inference.results import (
    constraint_name,
    load_param_store_safetensors,
    param_store_pt,
    param_store_safetensors,
    parse_constraint,
    split_params,
)


@pytest.mark.parametrize(
    "constraint, name",
    [
        (C.real, "real"),
        (C.positive, "positive"),
        (C.greater_than(0.0), "positive"),
        (C.unit_interval, "unit_interval"),
        (C.interval(0.0, 1.0), "interval(0.0, 1.0)"),
        (C.interval(-2.5, 3.0), "interval(-2.5, 3.0)"),
        (C.simplex, "simplex"),
        (C.lower_cholesky, "lower_cholesky"),
        (C.softplus_positive, "softplus_positive"),
        (C.greater_than(2.0), "greater_than(2.0)"),
        (C.less_than(-1.0), "less_than(-1.0)"),
        (C.independent(C.real, 1), "independent(real, 1)"),
        (C.independent(C.interval(0.0, 2.0), 2), "independent(interval(0.0, 2.0), 2)"),
        (C.corr_cholesky, "corr_cholesky"),
    ],
)
def test_constraint_names_round_trip(constraint, name):
    assert constraint_name(constraint) == name
    parsed = parse_constraint(name)
    assert constraint_name(parsed) == name
    # The parsed constraint maps unconstrained values the same way.
    assert type(torch.distributions.transform_to(parsed)) is type(torch.distributions.transform_to(constraint))


def test_parse_constraint_rejects_unknown_text():
    with pytest.raises(ValueError):
        parse_constraint("__import__('os')")


def _model_with_param(J, y, sigma):
    noise = pyro.param("noise_scale", torch.tensor(1.5), constraint=C.positive)
    share = pyro.param("share", torch.full((2,), 0.3), constraint=C.interval(0.0, 1.0))
    eight_schools(J=J, y=y, sigma=sigma * noise * (share.sum() + 0.4))


def test_split_params_phi_theta_with_constrained_values():
    pyro.clear_param_store()
    guide = AutoNormal(_model_with_param)
    train(_model_with_param, guide, EIGHT, steps=3)
    guide_params, model_params = split_params(_model_with_param, guide, EIGHT)
    assert set(model_params) == {"noise_scale", "share"}
    assert set(guide_params) == {
        f"AutoNormal.{kind}.{site}" for kind in ("locs", "scales") for site in ("mu", "tau", "theta_tilde")
    }
    noise = model_params["noise_scale"]
    assert noise["constraint"] == "positive" and noise["shape"] == [] and noise["dtype"] == "float32"
    assert noise["value"] == pytest.approx(float(pyro.param("noise_scale").detach()))
    assert model_params["share"]["constraint"] == "interval(0.0, 1.0)"
    assert model_params["share"]["shape"] == [2]
    scales = guide_params["AutoNormal.scales.theta_tilde"]
    assert scales["shape"] == [8] and scales["constraint"] == "softplus_positive"
    assert all(v > 0 for v in scales["value"])  # constrained, not the raw unconstrained values
    pyro.clear_param_store()


def test_split_params_reports_untouched_store_entries():
    pyro.clear_param_store()
    pyro.param("left_over", torch.zeros(3))
    guide = AutoNormal(eight_schools)
    guide(**EIGHT)
    guide_params, model_params = split_params(eight_schools, guide, EIGHT)
    assert model_params["left_over"]["traced"] is False
    assert "left_over" not in guide_params
    pyro.clear_param_store()


@pytest.mark.parametrize("guide_class", [AutoNormal, AutoDiagonalNormal])
def test_param_store_round_trips_to_a_locally_built_guide(guide_class):
    pyro.clear_param_store()
    guide = guide_class(eight_schools)
    train(eight_schools, guide, EIGHT, steps=25)
    median = {k: v.detach().clone() for k, v in guide.median(**EIGHT).items()}
    blob = param_store_safetensors()
    pt_blob = param_store_pt()

    # Safe format: clear, rebuild the state, build the same autoguide from scratch.
    pyro.clear_param_store()
    pyro.set_rng_seed(123)  # a different init would show if the stored values were ignored
    pyro.get_param_store().set_state(load_param_store_safetensors(blob))
    fresh = guide_class(eight_schools)
    fresh(**EIGHT)
    for name, value in fresh.median(**EIGHT).items():
        assert torch.allclose(value, median[name], atol=1e-6), name

    # Pyro's own format, loaded the way a user would: ParamStore.load(path).
    pyro.clear_param_store()
    path = f"/tmp/vihub-test-params-{guide_class.__name__}.pt"
    with open(path, "wb") as fh:
        fh.write(pt_blob)
    pyro.get_param_store().load(path)
    fresh = guide_class(eight_schools)
    fresh(**EIGHT)
    for name, value in fresh.median(**EIGHT).items():
        assert torch.allclose(value, median[name], atol=1e-6), name
    pyro.clear_param_store()


def test_param_store_file_loads_in_a_fresh_process(tmp_path):
    pyro.clear_param_store()
    guide = AutoNormal(eight_schools)
    train(eight_schools, guide, EIGHT, steps=20)
    median = {k: v.tolist() for k, v in guide.median(**EIGHT).items()}
    path = tmp_path / "params.safetensors"
    path.write_bytes(param_store_safetensors())
    pyro.clear_param_store()
    script = textwrap.dedent(
        f"""
        import json, sys, torch, pyro
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parents[2])!r})  # tests/models.py
        from pyro.infer.autoguide import AutoNormal
        from inference.results import load_param_store_safetensors
        from results_models import EIGHT, eight_schools
        state = load_param_store_safetensors(open({str(path)!r}, "rb").read())
        pyro.get_param_store().set_state(state)
        guide = AutoNormal(eight_schools)
        guide(**EIGHT)
        print(json.dumps({{k: v.tolist() for k, v in guide.median(**EIGHT).items()}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(loaded) == set(median)
    for name, value in median.items():
        assert torch.allclose(torch.tensor(loaded[name]), torch.tensor(value), atol=1e-6)


def test_safetensors_state_keeps_constraints_and_rejects_foreign_files():
    from safetensors.torch import save

    pyro.clear_param_store()
    pyro.param("p", torch.tensor([0.2, 0.8]), constraint=C.simplex)
    pyro.param("c", torch.eye(2), constraint=C.lower_cholesky)
    state = load_param_store_safetensors(param_store_safetensors())
    assert constraint_name(state["constraints"]["p"]) == "simplex"
    assert constraint_name(state["constraints"]["c"]) == "lower_cholesky"
    pyro.clear_param_store()
    pyro.get_param_store().set_state(state)
    assert torch.allclose(pyro.param("p"), torch.tensor([0.2, 0.8]), atol=1e-6)
    pyro.clear_param_store()
    with pytest.raises(ValueError):
        load_param_store_safetensors(save({"x": torch.zeros(1)}))


def test_split_params_with_a_custom_guide():
    pyro.clear_param_store()

    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        pyro.sample("obs", dist.Normal(mu, pyro.param("sd", torch.tensor(1.0), constraint=C.positive)), obs=y)

    def guide(y):
        loc = pyro.param("q_loc", torch.tensor(0.0))
        scale = pyro.param("q_scale", torch.tensor(0.5), constraint=C.positive)
        pyro.sample("mu", dist.Normal(loc, scale))

    guide_params, model_params = split_params(model, guide, {"y": torch.tensor(0.3)})
    assert set(guide_params) == {"q_loc", "q_scale"} and set(model_params) == {"sd"}
    assert guide_params["q_scale"]["value"] == pytest.approx(0.5)
    pyro.clear_param_store()
