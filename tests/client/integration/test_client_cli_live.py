"""The ``vihub`` client commands end to end: real processes against a live server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

# Not the catalog's text on purpose: the CLI uploads CSV columns (y, sigma) and no J, so
# the plate is sized by the data.
MODEL = '''\
import pyro
import pyro.distributions as dist


def model(y, sigma):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", y.shape[0]):
        theta_tilde = pyro.sample("theta_tilde", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_tilde)
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)
'''
CSV = "y,sigma\n28,15\n8,10\n-3,16\n7,11\n-1,9\n1,11\n18,10\n12,18\n"


def vihub(live, key: str | None, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = live.client_env(key or "")
    if key is None:
        env.pop("VIHUB_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "vihub_client.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_end_to_end(live, api_key, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    data = tmp_path / "data.csv"
    data.write_text(CSV)

    result = vihub(live, api_key, "catalog")
    assert result.returncode == 0 and "eight_schools_noncentered" in result.stdout, result.stderr

    result = vihub(live, api_key, "validate", str(model), "--data", str(data))
    assert result.returncode == 0, result.stderr + result.stdout

    result = vihub(live, api_key, "datasets", "upload", str(data), "-q")
    assert result.returncode == 0, result.stderr
    dataset_id = result.stdout.strip()

    result = vihub(live, api_key, "submit", str(model), "--data", dataset_id, "--guide", "AutoNormal",
                   "--elbo", "Trace_ELBO", "--steps", "300", "--lr", "0.05", "--seed", "1",
                   "--num-samples", "100", "--label", "via=cli", "--watch", "-q")
    assert result.returncode == 0, result.stderr + live.logs()
    job_id = result.stdout.strip()
    assert "succeeded" in result.stderr

    result = vihub(live, api_key, "status", job_id, "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["state"] == "succeeded"

    result = vihub(live, api_key, "jobs", "--label", "via=cli", "--json")
    assert result.returncode == 0 and [j["id"] for j in json.loads(result.stdout)] == [job_id]

    result = vihub(live, api_key, "watch", job_id)
    assert result.returncode == 0 and "succeeded" in result.stderr

    out = tmp_path / "npz"
    result = vihub(live, api_key, "results", job_id, "--format", "npz", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with np.load(out / "samples.npz", allow_pickle=False) as npz:
        assert npz["mu"].shape == (100,)
    assert json.loads((out / "summary.json").read_text())["summary"]["mu"]["mean"]

    out = tmp_path / "nc"
    result = vihub(live, api_key, "results", job_id, "--format", "netcdf", "--out", str(out))
    assert result.returncode == 0, result.stderr
    xr = pytest.importorskip("xarray")
    with xr.open_dataset(out / "samples.nc", group="posterior", engine="h5netcdf") as posterior:
        assert posterior["mu"].size == 100

    # a finished job cannot be cancelled: the API's 409 -> exit 3 with the problem
    result = vihub(live, api_key, "cancel", job_id)
    assert result.returncode == 3 and "409" in result.stderr

    result = vihub(live, api_key, "status", "no-such-job")
    assert result.returncode == 3 and "404" in result.stderr

    result = vihub(live, "vihub_wrong_key", "jobs")
    assert result.returncode == 3 and "401" in result.stderr

    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\ndef model(y, sigma):\n    os.system('true')\n")
    result = vihub(live, api_key, "submit", str(bad), "--data", str(data))
    assert result.returncode == 3 and "422" in result.stderr and "line" in result.stderr

    result = vihub(live, api_key, "submit", str(tmp_path / "missing.py"))
    assert result.returncode == 2


def test_cli_cancel_running_job(live, api_key) -> None:
    # stop "steps": the default stop rule ends eight schools in well under a second
    result = vihub(live, api_key, "submit", "catalog:eight_schools_noncentered", "--steps", "100000",
                   "--inference", '{"stop": "steps"}', "-q")
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    result = vihub(live, api_key, "cancel", job_id)
    assert result.returncode == 0 and "cancel" in result.stdout
    result = vihub(live, api_key, "watch", job_id, "--timeout", "120")
    assert result.returncode == 1 and "cancelled" in result.stderr.lower()
