"""PSIS k-hat: our implementation against ArviZ's, the readings, the importance ESS."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from inference.results import (
    importance_diagnostics,
    importance_ess,
    khat_reading,
    pareto_khat,
)
from inference.results.psis import tail_length


def _weight_sets():
    rng = np.random.default_rng(0)
    return {
        "normal": rng.normal(size=1000),
        "narrow-normal": rng.normal(0, 0.3, size=400),
        "wide-normal": rng.normal(0, 3, size=2000),
        "student-t": np.log(np.abs(rng.standard_t(3, size=1000))),
        "pareto-heavy": np.log(rng.pareto(0.8, size=4000) + 1),
        "pareto-mild": np.log(rng.pareto(3.0, size=1000) + 1),
        "few-draws": rng.normal(size=50),
        "with-minus-inf": np.concatenate([rng.normal(size=300), [-np.inf] * 5]),
    }


@pytest.mark.parametrize("name", list(_weight_sets()))
def test_khat_matches_arviz(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import arviz as az
    lw = _weight_sets()[name]
    _, arviz_k = az.psislw(lw.copy())
    ours = pareto_khat(lw)
    assert ours == pytest.approx(float(arviz_k), abs=0.05)
    # Same algorithm, same prior: the agreement is in fact to rounding.
    assert ours == pytest.approx(float(arviz_k), abs=1e-8)


def test_khat_is_shift_invariant_and_reads_heavy_tails():
    rng = np.random.default_rng(1)
    lw = rng.normal(size=2000)
    assert pareto_khat(lw) == pytest.approx(pareto_khat(lw + 1234.5), abs=1e-9)
    heavy = np.log(rng.pareto(0.5, size=4000) + 1)  # tail index 0.5 -> k near 2
    assert pareto_khat(heavy) > 1.0


def test_tail_length_follows_vehtari():
    assert tail_length(100) == 20  # 0.2 S wins
    assert tail_length(10000) == 300  # 3 sqrt(S) wins


def test_degenerate_weights():
    assert pareto_khat(np.zeros(100)) == float("inf")
    assert np.isnan(pareto_khat([0.0, np.nan, 1.0]))
    assert pareto_khat([0.0, np.inf]) == float("inf")


@pytest.mark.parametrize(
    "k, reading",
    [(-0.3, "good"), (0.49, "good"), (0.5, "ok"), (0.69, "ok"), (0.7, "unreliable"),
     (0.99, "unreliable"), (1.0, "very bad"), (float("inf"), "very bad"), (float("nan"), "unknown")],
)
def test_khat_reading(k, reading):
    assert khat_reading(k) == reading


def test_importance_ess():
    assert importance_ess(np.zeros(50)) == pytest.approx(50.0)
    assert importance_ess(np.array([0.0] + [-50.0] * 99)) == pytest.approx(1.0, abs=1e-6)
    assert 1.0 < importance_ess(np.random.default_rng(2).normal(size=100)) < 100.0


def test_importance_diagnostics_flags_point_mass_guides():
    report = importance_diagnostics(np.zeros(10), point_mass_guide=True)
    assert report["k_hat"] == float("inf") and report["k_hat_reading"] == "very bad"
    assert "point-mass" in report["k_hat_note"]
    report = importance_diagnostics(np.random.default_rng(3).normal(0, 0.1, size=500))
    assert report["k_hat_reading"] == "good" and report["importance_ess"] > 400
