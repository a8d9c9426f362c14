"""Result downloads built from the stored JSON have the forms the worker stores.

A binary form the worker did not store (or lost) is encoded on request from the
``result_json`` artifact by ``inference.results.formats``, the module ``FitResult`` uses:
the download must be the stored artifact's layout whichever path served it.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from test_jobs import play_worker, submit, tiny_fit

from inference.results import formats


@pytest.fixture
def finished(api, headers, make_job):
    result = tiny_fit(make_job)
    job = submit(api, headers, make_job())
    play_worker(api, job["id"], result, [(i + 1, float(v)) for i, v in enumerate(result.loss)])
    return result, f"/v1/jobs/{job['id']}"


def test_samples_in_every_format_match_the_stored_npz(api, headers, finished):
    result, base = finished
    stored = formats.read_npz(api.client.get(f"{base}/samples?format=npz", headers=headers).content)
    assert stored.keys() == formats.read_npz(result.samples_npz()).keys()
    encoded, _ = formats.read_safetensors(api.client.get(f"{base}/samples?format=safetensors",
                                                         headers=headers).content)
    assert sorted(encoded) == sorted(stored)
    for name, array in stored.items():
        np.testing.assert_array_equal(encoded[name], array)
        assert encoded[name].dtype == array.dtype  # the recorded dtype, not float64
    netcdf = api.client.get(f"{base}/samples?format=netcdf", headers=headers)
    assert netcdf.headers["content-disposition"].endswith('-samples.nc"')
    posterior = formats.read_netcdf(netcdf.content, "posterior")
    assert sorted(posterior) == sorted(result.samples)
    assert formats.read_netcdf(netcdf.content, "sample_stats")["lp"].shape[1] == len(result.log_probs["log_joint"])


def test_log_probs_binary_forms_have_the_npz_artifacts_keys(api, headers, finished):
    result, base = finished
    stored = formats.read_npz(api.client.get(f"{base}/log-probs?format=npz", headers=headers).content)
    encoded, _ = formats.read_safetensors(api.client.get(f"{base}/log-probs?format=safetensors",
                                                         headers=headers).content)
    assert sorted(encoded) == sorted(stored) == sorted(formats.read_npz(result.log_probs_npz()))
    np.testing.assert_allclose(encoded["log_joint"], stored["log_joint"])


def test_params_forms(api, headers, finished):
    result, base = finished
    body = api.client.get(f"{base}/params", headers=headers).json()
    arrays, metadata = formats.read_safetensors(api.client.get(f"{base}/params?format=safetensors",
                                                               headers=headers).content)
    assert sorted(arrays) == sorted({**result.guide_params, **result.model_params})
    assert json.loads(metadata["vihub.guide_params"]) == list(body["guide_params"])
    flat = np.load(io.BytesIO(api.client.get(f"{base}/params?format=npz", headers=headers).content))
    for name, entry in body["guide_params"].items():
        np.testing.assert_allclose(flat[f"guide_params/{name}"], np.asarray(entry["value"]).reshape(entry["shape"]))
