"""The SDK's sweeps and comparisons against the live server and worker: ``client.sweep``
over two guides, ``wait``, the comparison as a DataFrame, ``to_arviz`` per member,
``client.compare``, ``continue_fit`` and ``ppc``."""

from __future__ import annotations

import pytest
import vihub_client as vc

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

pd = pytest.importorskip("pandas")
pytest.importorskip("arviz")


@pytest.fixture
def client(live, api_key) -> vc.Client:
    with vc.Client(live.url, api_key, timeout=60) as client:
        yield client


def test_sweep_compare_continue_and_ppc(client: vc.Client) -> None:
    sweep = client.sweep("catalog:eight_schools_noncentered",
                         inference={"steps": 300, "seed": 0, "optimizer": {"name": "Adam", "lr": 0.05}},
                         outputs={"num_samples": 200, "predictive": True, "elbo_terms_every": 0},
                         axes={"guide.auto": ["AutoNormal", "AutoDiagonalNormal"]}, name="sdk")
    assert len(sweep.members) == 2
    sweep.wait(timeout=300, poll_interval=1.0)
    assert sweep.done and sweep.counts["succeeded"] == 2, sweep.counts

    frame = sweep.comparison()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2
    assert set(frame["guide"]) == {"AutoNormal", "AutoDiagonalNormal"}
    assert (frame["elbo_se"] > 0).all() and frame["recommended"].sum() == 1
    assert frame.attrs["recommended"] in frame.index
    assert frame.attrs["rule"]["criterion"] == "elbo"

    idatas = sweep.to_arviz()
    assert set(idatas) == set(frame.index)
    for idata in idatas.values():
        assert "log_likelihood" in idata.groups() and idata.posterior["mu"].shape[-1] == 200

    jobs = sweep.jobs()
    again = client.compare(jobs, sort="k_hat", order="asc")
    assert list(again.index) == list(frame.sort_values("k_hat").index)

    more = jobs[0].continue_fit(50)
    assert more.wait(timeout=300, progress=False).state == "succeeded"
    assert more.progress.step == 350
    checks = jobs[0].ppc([0.1, 0.9])
    assert set(checks["sites"]["obs"]["statistics"]) == {"mean", "sd", "min", "max", "q10", "q90"}
    sweep.delete()
    with pytest.raises(vc.NotFound):
        client.get_sweep(sweep.id)
