"""``inference.results.formats``: the one module that writes and reads result forms.

The API encodes downloads from the stored JSON with these functions and the worker
stores ``FitResult``'s forms, so both must agree; and the module must stay importable
without torch (the API process never loads it).
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.results import FitResult, formats

REPO = Path(__file__).resolve().parents[3]


def _result() -> FitResult:
    rng = np.random.default_rng(0)
    return FitResult(
        guide_params={"AutoNormal.locs.mu": {"value": 0.5, "shape": [], "dtype": "float32", "constraint": "real"},
                      "AutoNormal.scales.theta": {"value": [0.1, 0.2, 0.3], "shape": [3], "dtype": "float32",
                                                  "constraint": "softplus_positive"}},
        model_params={"w": {"value": [[1.0, 2.0]], "shape": [1, 2], "dtype": "float64", "constraint": "real"}},
        loss=[3.0, 2.0, float("nan")],
        samples={"mu": rng.normal(size=20).astype(np.float32), "theta": rng.normal(size=(20, 3))},
        predictive={"obs": rng.normal(size=(20, 3)).astype(np.float32)},
        log_probs={"log_joint": rng.normal(size=20), "log_q": rng.normal(size=20),
                   "log_weight": np.r_[rng.normal(size=19), -np.inf],
                   "model_sites": {"mu": rng.normal(size=20), "obs": rng.normal(size=20)},
                   "guide_sites": {"mu": rng.normal(size=20)},
                   "pointwise": {"obs": rng.normal(size=(20, 3))},
                   "point_mass_guide": False, "has_latents": True, "notes": ["a note"], "num_draws": 20},
        diagnostics={"k_hat": 0.3, "k_hat_reading": "good"},
        meta={"versions": {"vihub": "0.1.0", "pyro": "1.9", "torch": "2"}},
    )


def test_importing_formats_and_fit_result_does_not_load_torch() -> None:
    code = ("import sys\nfrom inference.results import FitResult, formats\n"
            "formats.encode_npz({'a': [1.0]}); formats.encode_safetensors({'a': [1.0]})\n"
            "assert 'torch' not in sys.modules and 'pyro' not in sys.modules, sorted(sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr


def test_json_layout_round_trips_with_dtypes() -> None:
    result = _result()
    data = json.loads(formats.encode_json(result.to_json()))
    assert data["schema_version"] == formats.SCHEMA_VERSION
    assert data["loss"][-1] is None and data["log_probs"]["log_weight"][-1] is None
    samples, predictive = formats.read_samples(data)
    assert samples["mu"].dtype == np.float32 and samples["theta"].dtype == np.float64
    np.testing.assert_array_equal(predictive["obs"], result.predictive["obs"])
    log_probs = formats.read_log_probs(data)
    assert np.isnan(log_probs["log_weight"][-1]) and log_probs["notes"] == ["a note"]
    np.testing.assert_array_equal(log_probs["pointwise"]["obs"], result.log_probs["pointwise"]["obs"])


def test_the_api_builds_the_workers_forms_from_the_stored_json() -> None:
    # A download encoded from the JSON result has the stored artifact's keys and values.
    result = _result()
    data = json.loads(formats.encode_json(result.to_json()))
    from_json = formats.read_npz(formats.encode_npz(formats.samples_arrays(*formats.read_samples(data))))
    stored = formats.read_npz(result.samples_npz())
    assert sorted(from_json) == sorted(stored) == ["mu", "predictive/obs", "theta"]
    for name in stored:
        np.testing.assert_array_equal(from_json[name], stored[name])
        assert from_json[name].dtype == stored[name].dtype
    lp_json = formats.log_probs_arrays(formats.read_log_probs(data))
    lp_stored = formats.read_npz(result.log_probs_npz())
    assert sorted(lp_json) == sorted(lp_stored)
    assert {"log_joint", "model_sites/obs", "pointwise/obs"} <= set(lp_stored)
    # (safetensors writes its metadata in hash order: compare what is read back.)
    from_json_params = formats.read_safetensors(formats.params_safetensors(data["guide_params"], data["model_params"]))
    stored_params = formats.read_safetensors(result.params_safetensors())
    assert from_json_params[1] == stored_params[1]
    assert sorted(from_json_params[0]) == sorted(stored_params[0])
    for name, array in stored_params[0].items():
        np.testing.assert_array_equal(from_json_params[0][name], array)


def test_params_safetensors_keeps_shapes_constraints_and_roles() -> None:
    arrays, metadata = formats.read_safetensors(_result().params_safetensors())
    assert arrays["AutoNormal.locs.mu"].shape == ()  # 0-d stays 0-d
    assert arrays["w"].dtype == np.float64 and arrays["w"].shape == (1, 2)
    assert json.loads(metadata["vihub.constraints"])["AutoNormal.scales.theta"] == "softplus_positive"
    assert json.loads(metadata["vihub.roles"]) == {"AutoNormal.locs.mu": "guide", "AutoNormal.scales.theta": "guide",
                                                   "w": "model"}
    assert metadata["vihub.format"] == formats.PARAMS_FORMAT


def test_safetensors_of_non_numeric_values_become_float64() -> None:
    arrays, _ = formats.read_safetensors(formats.encode_safetensors(
        {"i": np.arange(3), "b": np.array([True, False]), "o": np.array([1, 2], dtype=object)}))
    assert arrays["i"].dtype == np.int64 and arrays["b"].dtype == np.bool_ and arrays["o"].dtype == np.float64


def test_netcdf_group_keeps_only_per_draw_arrays() -> None:
    """``num_draws`` and other scalars in the log-probs must not clash with the draw dim."""
    arrays = {"log_joint": np.zeros(30), "model_sites/obs": np.ones(30),
              "pointwise/obs": np.zeros((30, 8)), "num_draws": np.asarray(30.0)}
    blob = formats.encode_netcdf(arrays, sample_dims=1, group="log_likelihood")
    import xarray as xr

    dataset = xr.open_dataset(io.BytesIO(blob), engine="h5netcdf", group="log_likelihood")
    assert set(dataset.data_vars) == {"log_joint", "model_sites.obs", "pointwise.obs"}
    assert dataset["pointwise.obs"].dims[:2] == ("chain", "draw") and dataset.sizes["draw"] == 30
    read = formats.read_netcdf(blob, group="log_likelihood")
    assert read["pointwise.obs"].shape == (1, 30, 8)


def test_inference_data_netcdf_has_the_arviz_groups() -> None:
    result = _result()
    blob = result.to_netcdf()
    posterior = formats.read_netcdf(blob, "posterior")
    assert posterior["theta"].shape == (1, 20, 3)
    np.testing.assert_allclose(posterior["mu"][0], result.samples["mu"])
    assert formats.read_netcdf(blob, "sample_stats")["lp"].shape == (1, 20)
    assert formats.read_netcdf(blob, "log_likelihood")["obs"].shape == (1, 20, 3)


def test_jsonable_is_strict_json() -> None:
    @dataclasses.dataclass
    class Report:
        ok: bool
        values: tuple

    value = {"nan": float("nan"), "array": np.array([1.0, np.inf]), "ints": np.arange(2), "scalar": np.float32(2.5),
             "bytes": b"\x00\x01", "report": Report(True, (np.int64(3), None)), "set": {1}, "other": Path("x")}
    out = formats.jsonable(value)
    assert out == {"nan": None, "array": [1.0, None], "ints": [0, 1], "scalar": 2.5, "bytes": {"base64": "AAE="},
                   "report": {"ok": True, "values": [3, None]}, "set": [1], "other": "x"}
    assert formats.blob_from_json(out["bytes"]) == b"\x00\x01"
    json.dumps(out, allow_nan=False)
    with pytest.raises(TypeError, match="complex"):
        formats.jsonable({"z": np.array([1 + 2j])})


def test_records_to_columns_and_flatten() -> None:
    columns = formats.records_to_columns([{"step": 1, "kl": {"mu": 1.0}}, {"step": 2, "kl": {}}], "elbo_terms")
    np.testing.assert_array_equal(columns["elbo_terms/step"], [1.0, 2.0])
    assert columns["elbo_terms/kl/mu"][0] == 1.0 and np.isnan(columns["elbo_terms/kl/mu"][1])
    flat = formats.flatten_arrays(formats.params_section(_result().to_json()))
    assert flat["guide_params/AutoNormal.scales.theta"].shape == (3,) and "model_params/w" in flat
