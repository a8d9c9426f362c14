"""Warm starts in the library: continuing from a final checkpoint is the longer fit, and
``init_params`` start a fit at another fit's values (structure checked)."""

from __future__ import annotations

import numpy as np
import pytest

from inference import FitCallbacks, JobSpec, fit
from inference.engine.errors import SpecError
from inference.engine.warm_start import read_params


def _spec(steps: int, guide: str = "AutoNormal", **inference) -> JobSpec:
    return JobSpec.model_validate({
        "model": {"catalog": "eight_schools_noncentered"},
        "guide": {"auto": guide},
        "inference": {"steps": steps, "seed": 3, "optimizer": {"name": "Adam", "lr": 0.05},
                      "progress_every_steps": 7, **inference},
        "outputs": {"num_samples": 20, "log_prob_draws": 20, "elbo_terms_every": 0,
                    "elbo_terms_particles": 2, "grad_norms_every": 0},
    })


def _values(result) -> dict[str, np.ndarray]:
    params = {**result.guide_params, **result.model_params}
    return {name: np.asarray(entry["value"], dtype=float) for name, entry in params.items()}


def test_continuing_from_the_final_checkpoint_equals_one_longer_fit() -> None:
    captured: list[tuple[bytes, int]] = []
    first = fit(_spec(40), {}, callbacks=FitCallbacks(on_final_checkpoint=lambda b, s: captured.append((b, s))))
    assert len(captured) == 1 and captured[0][1] == 40
    continued = fit(_spec(70, init_from={"job": "j", "optimizer": True}), {}, resume_from=captured[0][0])
    combined = fit(_spec(70), {})

    assert continued.meta["resumed_from_step"] == 40 and continued.meta["steps_done"] == 70
    np.testing.assert_allclose(continued.loss[:40], first.loss, rtol=0, atol=0)
    np.testing.assert_allclose(continued.loss, combined.loss, rtol=1e-6, atol=1e-6)
    a, b = _values(continued), _values(combined)
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    # ...and it did move on from where the first fit stopped.
    assert any(not np.allclose(a[n], _values(first)[n]) for n in a)


def test_init_params_start_at_the_other_fits_values() -> None:
    first = fit(_spec(60), {})
    blob = first.params_safetensors()
    # lr 1e-9: one step barely moves, so the result shows where the fit started.
    warm = fit(_spec(1, init_from={"job": "j"}, optimizer={"name": "Adam", "lr": 1e-9}), {}, init_params=blob)
    cold = fit(_spec(1, optimizer={"name": "Adam", "lr": 1e-9}), {})
    got, want = _values(warm), _values(first)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)
    assert any(not np.allclose(_values(cold)[n], want[n], atol=1e-3) for n in want)
    assert set(read_params(blob)) == set(want)


def test_init_params_of_another_guide_name_the_mismatch() -> None:
    blob = fit(_spec(5), {}).params_safetensors()
    with pytest.raises(SpecError) as info:
        fit(_spec(5, "AutoMultivariateNormal", init_from={"job": "j"}), {}, init_params=blob)
    message = str(info.value)
    assert info.value.field == "inference.init_from"
    assert "AutoNormal.locs.mu" in message and "AutoMultivariateNormal.loc" in message


def test_init_from_without_params_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="init_params"):
        fit(_spec(5, init_from={"job": "j"}), {})
