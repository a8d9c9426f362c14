"""Fitted params -> a local Pyro guide: build the same AutoNormal on the same model, load the
downloaded param store, and get the medians the service reported (to 1e-6).

Needs torch and pyro, so it runs in the server's environment only (skipped elsewhere).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import vihub_client as vc

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")

import models  # noqa: E402 - after the skips: it needs the server's environment

# The catalog's eight schools, submitted as source text (tests/models.py).
MODEL = models.source(models.EIGHT_SCHOOLS)
DATA = models.json_data(models.EIGHT_SCHOOLS)


def _local_model(tmp_path: Path):
    path = tmp_path / "schools_model.py"
    path.write_text(MODEL)
    spec = importlib.util.spec_from_file_location("schools_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own test model, the same text the service fitted
    return path, module.model


def test_params_round_trip_to_local_autonormal(live, api_key, tmp_path: Path) -> None:
    from pyro.distributions import constraints
    from pyro.infer.autoguide import AutoNormal
    from torch.distributions import biject_to

    path, model = _local_model(tmp_path)
    with vc.Client(live.url, api_key) as client:
        job = client.submit(path, guide="AutoNormal", data=DATA, inference={"steps": 300, "seed": 3},
                            outputs={"num_samples": 50})
        job.wait(timeout=300, progress=False)
        reported = job.params()["guide_params"]
        store_file = tmp_path / "param_store.pt"
        store_file.write_bytes(job.fetch("params", "pt"))

    pyro.clear_param_store()
    pyro.get_param_store().load(str(store_file))
    data = {"J": DATA["J"], "y": torch.tensor(DATA["y"]), "sigma": torch.tensor(DATA["sigma"])}
    guide = AutoNormal(model)
    guide(**data)  # builds the prototype; params come from the loaded store
    store = pyro.get_param_store()
    assert set(reported) <= set(store.keys())
    for name, record in reported.items():  # every fitted value, constrained, as the service reported it
        torch.testing.assert_close(store[name].detach().double(),
                                   torch.as_tensor(record["value"], dtype=torch.float64), rtol=0, atol=1e-6)
    medians = guide.median(**data)
    supports = {"mu": constraints.real, "tau": constraints.positive, "theta_tilde": constraints.real}
    assert set(medians) == set(supports)
    for site, support in supports.items():
        loc = torch.as_tensor(reported[f"AutoNormal.locs.{site}"]["value"], dtype=torch.float64)
        expected = biject_to(support)(loc)
        torch.testing.assert_close(medians[site].double(), expected, rtol=0, atol=1e-6)
    pyro.clear_param_store()
