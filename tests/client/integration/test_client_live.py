"""The SDK against a live server and worker (Postgres, Redis, Celery): the full cycle,
cancel, pagination, typed errors, the async client and the ecosystem formats."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from pathlib import Path

import pytest
import vihub_client as vc

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

np = pytest.importorskip("numpy")

CATALOG = "catalog:eight_schools_noncentered"
STEPS = 600
NUM_SAMPLES = 300


@pytest.fixture
def client(live, api_key) -> vc.Client:
    with vc.Client(live.url, api_key, timeout=60) as client:
        yield client


def test_full_cycle(client: vc.Client, live, tmp_path: Path) -> None:
    job = client.submit(CATALOG, guide="AutoNormal", inference={"steps": STEPS, "seed": 0, "stop": "steps",
                        "optimizer": {"name": "Adam", "lr": 0.05}, "progress_every_steps": 50},
                        outputs={"num_samples": NUM_SAMPLES, "log_prob_draws": NUM_SAMPLES}, labels={"suite": "client"})
    assert job.state in ("queued", "running") and job.labels == {"suite": "client"}
    updates: list[tuple[str, int]] = []
    job.wait(timeout=300, progress=lambda j: updates.append((j.state, j.progress.step)))
    assert job.state == "succeeded", live.logs()
    assert job.progress.step == STEPS and job.finished_at is not None
    assert any(0 < step < STEPS for _, step in updates), updates  # live progress was seen

    params = job.params()
    assert "AutoNormal.locs.mu" in params["guide_params"]
    samples = job.samples()
    assert samples["mu"].shape == (NUM_SAMPLES,) and samples["theta"].shape == (NUM_SAMPLES, 8)
    log_probs = job.log_probs()
    assert log_probs["log_joint"].shape == (NUM_SAMPLES,)
    assert np.isfinite(log_probs["log_weight"]).all()
    summary = job.summary()
    assert abs(summary["mu"]["mean"] - float(samples["mu"].mean())) < 1e-3
    assert 1.0 < summary["mu"]["mean"] < 8.0  # eight schools: posterior mean of mu near 4.4
    diagnostics = job.diagnostics()
    assert "k_hat" in diagnostics and "meta" in diagnostics
    loss = job.loss(max_points=50)
    assert len(loss["loss"]) <= 50 and loss["steps"][-1] == STEPS and loss["num_points"] == STEPS

    az = pytest.importorskip("arviz")
    idata = job.to_arviz()
    assert {"posterior", "sample_stats"} <= set(idata.groups())
    table = az.summary(idata, var_names=["mu", "tau"], kind="stats")
    assert abs(table.loc["mu", "mean"] - summary["mu"]["mean"]) < 0.01
    assert idata.posterior["theta"].shape == (1, NUM_SAMPLES, 8)

    written = job.download(tmp_path / "all")
    assert {"job.json", "params.json", "loss.json", "samples.npz", "log_probs.npz", "summary.json",
            "diagnostics.json"} <= set(written)
    with np.load(written["samples.npz"], allow_pickle=False) as npz:
        np.testing.assert_allclose(npz["mu"], samples["mu"])
    with np.load(written["log_probs.npz"], allow_pickle=False) as npz:
        assert "log_joint" in npz.files
    if "samples.nc" in written:
        xr = pytest.importorskip("xarray")
        posterior = xr.open_dataset(written["samples.nc"], group="posterior", engine="h5netcdf")
        np.testing.assert_allclose(posterior["mu"].values.reshape(-1), samples["mu"])
        posterior.close()
    assert {"params.safetensors", "samples.nc"} <= set(written), f"optional formats missing: {sorted(written)}"


def test_netcdf_download_opens_as_inference_data(client: vc.Client) -> None:
    az = pytest.importorskip("arviz")
    xr = pytest.importorskip("xarray")
    job = client.submit(CATALOG, inference={"steps": 100}, outputs={"num_samples": 50}).wait(timeout=300, progress=False)
    content = job.fetch("samples", "netcdf")
    dataset = xr.open_dataset(io.BytesIO(content), group="posterior", engine="h5netcdf")
    assert dataset["mu"].shape == (1, 50)
    from vihub_client._formats import open_netcdf

    idata = open_netcdf(content)
    assert "posterior" in idata.groups()
    assert az.summary(idata, var_names=["mu"], kind="stats").shape[0] == 1


def test_progress_bar_renders(client: vc.Client, capsys) -> None:
    job = client.submit(CATALOG, inference={"steps": 200, "progress_every_steps": 20}, outputs={"num_samples": 20})
    job.wait(timeout=300, progress=True)
    err = capsys.readouterr().err
    assert "200/200" in err and "succeeded" in err


def test_cancel_running_job(client: vc.Client, live) -> None:
    # stop "steps": the default stop rule ends eight schools after ~1,000 steps, well
    # under a second, before a cancel can land.
    job = client.submit(CATALOG, inference={"steps": 100_000, "stop": "steps", "progress_every_steps": 10,
                                            "progress_every_s": 0.2},
                        outputs={"num_samples": 10})
    deadline = time.monotonic() + 180
    while not (job.state == "running" and job.progress.step > 0):
        assert time.monotonic() < deadline, f"job never ran: {job.raw}\n{live.logs()}"
        time.sleep(0.3)
        job.refresh()
    job.cancel()
    with pytest.raises(vc.JobCancelled) as info:
        job.wait(timeout=120, progress=False)
    assert info.value.job.state == "cancelled"
    assert 0 < job.refresh().progress.step < 100_000
    with pytest.raises(vc.Conflict):
        job.summary()  # no results for a cancelled job


def test_list_pages(client: vc.Client) -> None:
    run = uuid.uuid4().hex[:8]
    ids = {client.submit(CATALOG, inference={"steps": 5}, outputs={"num_samples": 5}, labels={"run": run}).id
           for _ in range(3)}
    first, token = client.jobs_page(label={"run": run}, page_size=2)
    assert len(first) == 2 and token
    second, token2 = client.jobs_page(label={"run": run}, page_size=2, page_token=token)
    assert len(second) == 1 and token2 is None
    assert {j.id for j in first + second} == ids
    assert {j.id for j in client.list_jobs(label={"run": run}, page_size=1)} == ids
    assert [j.id for j in client.list_jobs(label={"run": "nothing-" + run})] == []
    for job in first + second:
        job.wait(timeout=300, progress=False)


def test_error_types(client: vc.Client, live) -> None:
    with pytest.raises(vc.NotFound) as info:
        client.job("does-not-exist")
    assert info.value.status == 404 and info.value.title

    other = vc.Client(live.url, live.new_key())
    job = client.submit(CATALOG, inference={"steps": 5}, outputs={"num_samples": 5})
    with pytest.raises(vc.NotFound):
        other.job(job.id)  # another tenant's job is invisible
    other.close()

    for key in ("vihub_wrong", None):
        with vc.Client(live.url, key or "") as anonymous, pytest.raises(vc.Unauthorized) as info:
            anonymous.job(job.id)
        assert info.value.status == 401

    with pytest.raises(vc.InvalidRequest) as info:
        client.submit("import os\ndef model(y):\n    os.system('true')\n", data={"y": [1.0]})
    assert info.value.status == 422 and info.value.extra.get("line") is not None

    with pytest.raises(vc.InvalidRequest) as info:
        client.submit(CATALOG, inference={"stepz": 3})
    assert info.value.status == 422
    assert any("stepz" in (e.get("pointer") or "") for e in info.value.errors), info.value.to_problem()

    with pytest.raises(vc.InvalidRequest) as info:
        client.submit(CATALOG, data={"J": 8, "y": [1.0] * 8})  # sigma missing
    assert info.value.status == 422 and "sigma" in str(info.value.detail)
    job.wait(timeout=300, progress=False)


def test_upload_dataset_and_predict(client: vc.Client, tmp_path: Path) -> None:
    entry = client.catalog_entry("eight_schools_noncentered")
    example = entry["example_data"]
    csv = tmp_path / "schools.csv"
    csv.write_text("y,sigma\n" + "".join(f"{y},{s}\n" for y, s in zip(example["y"], example["sigma"], strict=True)))
    dataset = client.upload_dataset(csv)
    assert {f["name"] for f in dataset.fields} == {"y", "sigma"}
    dataset = client.upload_dataset(example)  # a dict goes up as JSON (J stays an integer)
    assert {f["name"] for f in dataset.fields} == set(example)
    job = client.submit(CATALOG, data=dataset, inference={"steps": 100}, outputs={"num_samples": 20})
    assert job.raw.get("dataset_id") == dataset.id
    job.wait(timeout=300, progress=False)
    predictive = job.predict(example, num_samples=7)
    assert predictive and all(np.asarray(v).shape[0] == 7 for v in predictive.values())


def test_async_client_cycle(live, api_key) -> None:
    async def cycle():
        async with vc.AsyncClient(live.url, api_key) as client:
            job = await client.submit(CATALOG, inference={"steps": 100}, outputs={"num_samples": 30})
            steps = []
            await job.wait(timeout=300, progress=lambda j: steps.append(j.progress.step))
            samples = await job.samples()
            summary = await job.summary()
            listed = [j.id async for j in client.list_jobs(limit=5)]
            with pytest.raises(vc.NotFound):
                await client.job("nope")
            return job, samples, summary, listed

    job, samples, summary, listed = asyncio.run(cycle())
    assert job.state == "succeeded" and samples["mu"].shape == (30,) and "mu" in summary
    assert job.id in listed


def test_idempotent_submit(client: vc.Client) -> None:
    key = uuid.uuid4().hex
    first = client.submit(CATALOG, inference={"steps": 5}, outputs={"num_samples": 5}, idempotency_key=key)
    again = client.submit(CATALOG, inference={"steps": 5}, outputs={"num_samples": 5}, idempotency_key=key)
    assert again.id == first.id
    with pytest.raises(vc.Conflict):
        client.submit(CATALOG, inference={"steps": 6}, outputs={"num_samples": 5}, idempotency_key=key)
    first.wait(timeout=300, progress=False)
