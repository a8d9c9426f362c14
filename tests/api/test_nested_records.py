"""Nested data fields (records: model configs, hyperparameters) through the service.

A record travels as a JSON object in inline ``data`` or ``POST /v1/datasets``, is stored in
the canonical NPZ's ``__records__.json`` member (``common.arrays``), is listed with kind
``record``, and reaches the model as the language's read-only ``DataRecord``. Jobs run with
the worker's own code in-process (``worker.runner.JobRunner``, each fit in its sandbox) on
the SQLite store; their losses equal ``inference.fit`` on the same data.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
import pytest

MODEL = '''
import pyro
import pyro.distributions as dist

def model(cfg, x, y=None):
    with pyro.plate("units", cfg.hidden):
        pyro.sample("u", dist.Normal(0.0, cfg["prior"]["scale"]))
    slope = pyro.sample("slope", dist.Normal(0.0, cfg["prior"]["scale"]))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    mean = b + slope * x
    if cfg.act == "relu":
        mean = mean.clamp(min=0.0)
    noise = cfg.noise if cfg.noise is not None else 1.0
    with pyro.plate("data", x.shape[0]):
        pyro.sample("obs", dist.Normal(mean, noise * cfg.weights[0]), obs=y)
'''

CFG = {"hidden": 3, "act": "linear", "prior": {"scale": 2.0, "name": "normal"}, "noise": None,
       "weights": [0.5, 1.0], "flag": True}


def _data() -> dict[str, Any]:
    rng = np.random.default_rng(3)
    x = np.linspace(-1.0, 1.0, 20)
    y = 0.3 + 1.2 * x + rng.normal(0.0, 0.5, size=x.size)
    return {"cfg": CFG, "x": x.round(4).tolist(), "y": y.round(4).tolist()}


def _spec() -> dict[str, Any]:
    return {
        "model": {"source": MODEL},
        "guide": {"auto": "AutoNormal"},
        "inference": {"steps": 30, "seed": 5, "optimizer": {"name": "Adam", "lr": 0.05}},
        "outputs": {"num_samples": 20, "elbo_terms_every": 0, "grad_norms_every": 0},
    }


def _run(api: Any, job_id: str) -> None:
    from worker.runner import JobRunner

    outcome = JobRunner(job_id, settings=api.settings, factory=api.runtime.sessionmaker,
                        publish=lambda *_: None).run()
    assert outcome == "succeeded", outcome


def _submit_and_run(api: Any, headers: dict[str, str], data: dict[str, Any]) -> list[float]:
    response = api.client.post("/v1/jobs", json={**_spec(), "data": data}, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    _run(api, job_id)
    job = api.client.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["state"] == "succeeded", job
    loss = api.client.get(f"/v1/jobs/{job_id}/loss", headers=headers)
    assert loss.status_code == 200, loss.text
    return [float(v) for v in loss.json()["loss"]]


@pytest.fixture(scope="module")
def local_loss() -> list[float]:
    """``inference.fit`` on the same data, as the library runs it."""
    from inference import fit

    data = _data()
    data = {**data, "x": np.asarray(data["x"]), "y": np.asarray(data["y"])}
    return [float(v) for v in fit(_spec(), data).loss]


@pytest.fixture
def tenant(api_sqlite: Any) -> dict[str, str]:
    return api_sqlite.tenant_headers()


def test_inline_record_job_has_the_library_loss(api_sqlite: Any, tenant: dict[str, str],
                                                local_loss: list[float]) -> None:
    loss = _submit_and_run(api_sqlite, tenant, {"inline": _data()})
    assert len(loss) == len(local_loss) == 30
    np.testing.assert_allclose(loss, local_loss, rtol=1e-6)


def test_dataset_with_a_record_lists_it_and_runs_memory_mapped(api_sqlite: Any, tenant: dict[str, str],
                                                               local_loss: list[float]) -> None:
    created = api_sqlite.client.post("/v1/datasets", json={"name": "cfg", "data": _data()}, headers=tenant)
    assert created.status_code == 201, created.text
    dataset = created.json()
    fields = {f["name"]: f for f in dataset["fields"]}
    assert fields["cfg"]["kind"] == "record"
    assert fields["cfg"]["dtype"] == "record"
    assert fields["cfg"]["shape"] == []
    assert fields["x"]["kind"] == "array" and fields["x"]["shape"] == [20]
    got = api_sqlite.client.get(f"/v1/datasets/{dataset['id']}", headers=tenant).json()
    assert got["fields"] == dataset["fields"]
    # the same data again (keys in another order): the same canonical bytes, deduplicated
    reordered = {"y": _data()["y"], "x": _data()["x"], "cfg": dict(reversed(list(CFG.items())))}
    again = api_sqlite.client.post("/v1/datasets", json={"data": reordered}, headers=tenant).json()
    assert again["sha256"] == dataset["sha256"] and again["id"] == dataset["id"] and not again["created"]

    loss = _submit_and_run(api_sqlite, tenant, {"dataset_id": dataset["id"]})
    np.testing.assert_allclose(loss, local_loss, rtol=1e-6)


def test_records_leave_array_only_digests_unchanged() -> None:
    from common.arrays import RECORDS_MEMBER, decode_arrays, encode_arrays

    # digest of this data as the encoder wrote it before records existed (main at 6790f64)
    assert encode_arrays({"x": [1.0, 2.0]}).sha256 == \
        "a2cbbc27aae706671ac3655e928fc80d8fd3290bc97d1b545ba9f0cfa431473d"
    plain = encode_arrays({"x": np.arange(3.0), "J": 8})
    with zipfile.ZipFile(io.BytesIO(plain.content)) as zf:
        assert zf.namelist() == ["J.npy", "x.npy"]
    with_record = encode_arrays({"x": np.arange(3.0), "J": 8, "cfg": {"a": 1}})
    with zipfile.ZipFile(io.BytesIO(with_record.content)) as zf:
        assert zf.namelist() == ["J.npy", "x.npy", RECORDS_MEMBER]
        assert json.loads(zf.read(RECORDS_MEMBER)) == {"cfg": {"a": 1}}
    decoded = decode_arrays(with_record.content)
    assert decoded["cfg"] == {"a": 1} and decoded["J"] == 8


def test_npz_upload_with_a_records_member_round_trips(api_sqlite: Any, tenant: dict[str, str]) -> None:
    from api.datasets.arrays import from_json_mapping
    from common.arrays import encode_arrays

    encoded = encode_arrays(from_json_mapping(_data(), pointer="/data"))
    response = api_sqlite.client.post("/v1/datasets", files={"file": ("d.npz", encoded.content)}, headers=tenant)
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == encoded.sha256
    json_file = api_sqlite.client.post("/v1/datasets", files={"file": ("d.json", json.dumps(_data()).encode())},
                                       headers=tenant)
    assert json_file.status_code in (200, 201), json_file.text
    assert json_file.json()["sha256"] == encoded.sha256


def test_validate_and_predict_take_records(api_sqlite: Any, tenant: dict[str, str]) -> None:
    report = api_sqlite.client.post("/v1/validate", json={**_spec(), "data": {"inline": _data()}}, headers=tenant)
    assert report.status_code == 200, report.text
    response = api_sqlite.client.post("/v1/jobs", json={**_spec(), "data": {"inline": _data()}}, headers=tenant)
    job_id = response.json()["id"]
    _run(api_sqlite, job_id)
    new = {"cfg": CFG, "x": [0.0, 0.5]}
    predicted = api_sqlite.client.post(f"/v1/jobs/{job_id}/predict",
                                       json={"data": {"inline": new}, "num_samples": 5}, headers=tenant)
    assert predicted.status_code == 200, predicted.text
    assert np.asarray(predicted.json()["predictive"]["obs"]).shape == (5, 2)


def _deep(levels: int) -> dict[str, Any]:
    record: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        record = {"inner": record}
    return record


BAD_RECORDS = {
    "too-deep": {"cfg": _deep(7)},
    "nan": {"cfg": {"scale": float("nan")}},
    "infinity": {"cfg": {"prior": {"scale": float("inf")}}},
    "huge-string": {"cfg": {"name": "x" * 5000}},
    "number-key": {"cfg": {"1": 2}},
    "private-key": {"cfg": {"_secret": 2}},
    "reserved-field": {"__records__": {"a": 1}},
    "too-many-entries": {"cfg": {f"k{i}": i for i in range(1001)}},
    "ragged-list": {"cfg": {"w": [[1, 2], [3]]}},
    "text-list": {"cfg": {"w": ["a", "b"]}},
    "big-int": {"cfg": {"n": 2**70}},
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
@pytest.mark.parametrize("path", ["jobs", "datasets", "validate", "file"])
def test_bad_records_are_4xx_problems(api_sqlite: Any, tenant: dict[str, str], case: str, path: str) -> None:
    fields = {**BAD_RECORDS[case], "x": [1.0, 2.0]}
    client = api_sqlite.client
    json_headers = {**tenant, "content-type": "application/json"}

    def post(url: str, body: dict[str, Any]) -> Any:  # json.dumps writes NaN/Infinity literals
        return client.post(url, content=json.dumps(body).encode(), headers=json_headers)

    if path == "jobs":
        response = post("/v1/jobs", {**_spec(), "data": {"inline": fields}})
    elif path == "validate":
        response = post("/v1/validate", {**_spec(), "data": {"inline": fields}})
    elif path == "datasets":
        response = post("/v1/datasets", {"data": fields})
    else:
        text = json.dumps(fields).encode()  # NaN/Infinity as JSON's non-standard literals
        response = client.post("/v1/datasets", files={"file": ("d.json", text)}, headers=tenant)
    assert response.status_code == 422, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    field = next(iter(BAD_RECORDS[case]))
    pointers = [problem.get("pointer")] + [e.get("pointer") for e in problem.get("errors") or []]
    assert any(p and f"/{field}" in p for p in pointers), problem


def test_bad_records_are_refused_by_the_data_checks() -> None:
    from api.datasets.arrays import from_json_mapping
    from api.errors import InvalidData

    for fields in BAD_RECORDS.values():
        with pytest.raises(InvalidData):
            from_json_mapping(json.loads(json.dumps(fields)), pointer="/data")


@pytest.mark.parametrize("bad", [
    {"__records__.json": b'{"cfg": {"a": NaN}}'},
    {"__records__.json": b'{"cfg": 3}'},
    {"__records__.json": b'[1]'},
    {"__records__.json": b'{"x": {"a": 1}}', "x.npy": None},
    {"__records__.json": json.dumps({"cfg": _deep(7)}).encode()},
    {"__records__.json": b"\xff\xfe not json"},
])
def test_bad_records_member_in_an_npz_upload_is_refused(api_sqlite: Any, tenant: dict[str, str],
                                                        bad: dict[str, bytes | None]) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in bad.items():
            if content is None:
                array = io.BytesIO()
                np.save(array, np.arange(2.0))
                content = array.getvalue()
            zf.writestr(name, content)
    response = api_sqlite.client.post("/v1/datasets", files={"file": ("d.npz", buffer.getvalue())}, headers=tenant)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_the_sdk_sends_records_as_json_objects() -> None:
    from vihub_client._inputs import plan_data

    body = plan_data({"cfg": {"hidden": np.int64(16), "prior": {"scale": np.float32(1.5), "w": np.arange(2)}},
                      "x": np.zeros(2)})
    assert body == {"inline": {"cfg": {"hidden": 16, "prior": {"scale": 1.5, "w": [0, 1]}}, "x": [0.0, 0.0]}}
    assert isinstance(body["inline"]["cfg"]["hidden"], int)
    json.dumps(body, allow_nan=False)
    with pytest.raises(ValueError, match="NaN"):
        plan_data({"cfg": {"prior": {"scale": float("nan")}}})
    with pytest.raises(TypeError, match="key"):
        plan_data({"cfg": {1: 2}})


def test_chunked_npz_upload_keeps_its_records(api_sqlite: Any, tenant: dict[str, str]) -> None:
    import hashlib

    from api.datasets.arrays import from_json_mapping
    from common.arrays import encode_arrays

    encoded = encode_arrays(from_json_mapping(_data(), pointer="/data"))
    content = encoded.content
    client = api_sqlite.client
    upload = client.post("/v1/datasets/uploads", json={
        "size_bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(), "filename": "d.npz"},
        headers=tenant)
    assert upload.status_code == 201, upload.text
    upload = upload.json()
    size = upload["part_bytes"]
    for number in range(1, upload["part_count"] + 1):
        part = content[(number - 1) * size: number * size]
        sent = client.put(f"/v1/datasets/uploads/{upload['id']}/parts/{number}", content=part,
                          headers={**tenant, "X-Content-SHA256": hashlib.sha256(part).hexdigest(),
                                   "Content-Type": "application/octet-stream"})
        assert sent.status_code == 200, sent.text
    done = client.post(f"/v1/datasets/uploads/{upload['id']}/complete", headers=tenant)
    assert done.status_code in (200, 201), done.text
    dataset = done.json()
    assert dataset["sha256"] == encoded.sha256
    assert {f["name"]: f["kind"] for f in dataset["fields"]} == {"cfg": "record", "x": "array", "y": "array"}


def test_the_sdk_submits_records_and_gets_the_library_loss(api_sqlite: Any, local_loss: list[float]) -> None:
    from vihub_client import Client

    _, key = api_sqlite.new_tenant()
    data = _data()
    cfg = {**CFG, "hidden": np.int64(CFG["hidden"]), "weights": np.asarray(CFG["weights"])}
    data = {"cfg": cfg, "x": np.asarray(data["x"]), "y": np.asarray(data["y"])}
    spec = _spec()
    with Client("http://testserver", key, transport=api_sqlite.client._transport, retries=0) as client:
        dataset = client.upload_dataset(data, name="sdk-cfg")
        assert {f["name"]: f["kind"] for f in dataset.fields} == {"cfg": "record", "x": "array", "y": "array"}
        job = client.submit(spec["model"], guide=spec["guide"], data=data, inference=spec["inference"],
                            outputs=spec["outputs"])
        _run(api_sqlite, job.id)
        loss = job.loss()["loss"]
    np.testing.assert_allclose(loss, local_loss, rtol=1e-6)
