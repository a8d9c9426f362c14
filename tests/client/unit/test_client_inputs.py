"""What ``submit`` accepts for model, guide, data and inference, and the body it sends."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from client_fakes import job_json
from vihub_client import Dataset
from vihub_client._inputs import UploadFile, normalize_guide, normalize_inference, normalize_model, parse_labels, plan_data

SOURCE = "import pyro\nimport pyro.distributions as dist\n\ndef model(y):\n    pyro.sample('mu', dist.Normal(0., 1.))\n"


def test_model_forms(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    assert normalize_model("catalog:eight_schools_noncentered") == {"catalog": "eight_schools_noncentered"}
    assert normalize_model("eight_schools_noncentered") == {"catalog": "eight_schools_noncentered"}
    assert normalize_model({"catalog": "x"}) == {"catalog": "x"}
    assert normalize_model(SOURCE) == {"source": SOURCE, "entry": "model"}
    assert normalize_model(SOURCE, entry="m2") == {"source": SOURCE, "entry": "m2"}
    assert normalize_model(path) == {"source": SOURCE, "entry": "model"}
    assert normalize_model(str(path)) == {"source": SOURCE, "entry": "model"}
    assert normalize_model("def model(): pass") == {"source": "def model(): pass", "entry": "model"}
    with pytest.raises(FileNotFoundError):
        normalize_model(str(tmp_path / "missing.py"))
    with pytest.raises(ValueError):
        normalize_model("not a model!")
    with pytest.raises(ValueError):
        normalize_model(42)


def test_guide_and_inference_forms(tmp_path: Path) -> None:
    assert normalize_guide("AutoNormal") == {"auto": "AutoNormal"}
    assert normalize_guide({"auto": "AutoDelta", "hide": ["z"]}) == {"auto": "AutoDelta", "hide": ["z"]}
    assert normalize_guide("def guide(y):\n    pass\n")["entry"] == "guide"
    assert normalize_guide(None) is None
    assert normalize_inference({"elbo": "TraceMeanField_ELBO", "optimizer": "Adam", "steps": 5}) == {
        "elbo": {"name": "TraceMeanField_ELBO"}, "optimizer": {"name": "Adam"}, "steps": 5}
    assert parse_labels(["a=1", "b = two"]) == {"a": "1", "b": "two"}
    with pytest.raises(ValueError):
        parse_labels(["nokey"])


def test_data_forms(tmp_path: Path) -> None:
    assert plan_data(None) is None
    assert plan_data({"J": 2, "y": [1.0, 2.0]}) == {"inline": {"J": 2, "y": [1.0, 2.0]}}
    assert plan_data({"dataset_id": "ds_1"}) == {"dataset_id": "ds_1"}
    assert plan_data({"inline": {"J": 2}}) == {"inline": {"J": 2}}
    assert plan_data("ds_123") == {"dataset_id": "ds_123"}
    assert plan_data(Dataset(id="ds_9")) == {"dataset_id": "ds_9"}
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,2\n")
    assert plan_data(str(csv)) == UploadFile(csv)
    assert plan_data(csv) == UploadFile(csv)
    with pytest.raises(FileNotFoundError):
        plan_data(str(tmp_path / "missing.csv"))
    with pytest.raises(TypeError):
        plan_data(3.5)


def test_numpy_arrays_become_lists() -> None:
    np = pytest.importorskip("numpy")
    planned = plan_data({"y": np.array([[1.5, 2.0]]), "n": np.int64(3), "k": np.arange(3)})
    assert planned == {"inline": {"y": [[1.5, 2.0]], "n": 3, "k": [0, 1, 2]}}
    json.dumps(planned)


def test_dataframe_columns_become_fields() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0, 1], "dataset_id": [5, 6]})
    assert plan_data(frame) == {"inline": {"x": [1.0, 2.0], "y": [0, 1], "dataset_id": [5, 6]}}
    with pytest.raises(ValueError, match="'x' contains NaN"):
        plan_data(pd.DataFrame({"x": [1.0, float("nan")]}))


def test_non_finite_data_is_refused_before_sending(server) -> None:
    with pytest.raises(ValueError, match="'y' contains NaN or infinity"):
        plan_data({"y": [[1.0, float("inf")]]})
    with server.client() as client, pytest.raises(ValueError, match="'y'"):
        client.submit("catalog:x", data={"y": [float("nan")]})
    assert server.requests == []


def test_submit_body(server) -> None:
    server.add("POST", "/v1/jobs", httpx.Response(202, json=job_json("j")))
    with server.client() as client:
        job = client.submit(
            SOURCE, guide="AutoDiagonalNormal", data={"y": [1.0, 2.0]},
            inference={"steps": 50, "elbo": "Trace_ELBO"}, outputs={"num_samples": 10},
            labels={"team": "a"}, webhook="https://example.org/hook",
        )
    assert job.id == "j" and job.state == "queued"
    body = json.loads(server.requests[0].content)
    assert body == {
        "model": {"source": SOURCE, "entry": "model"},
        "guide": {"auto": "AutoDiagonalNormal"},
        "data": {"inline": {"y": [1.0, 2.0]}},
        "inference": {"steps": 50, "elbo": {"name": "Trace_ELBO"}},
        "outputs": {"num_samples": 10},
        "labels": {"team": "a"},
        "webhook": {"url": "https://example.org/hook"},
    }
    assert server.requests[0].headers["Authorization"] == "Bearer key-1"


def test_submit_with_a_data_file_uploads_it_first(server, tmp_path: Path) -> None:
    csv = tmp_path / "schools.csv"
    csv.write_text("y,sigma\n28,15\n8,10\n")
    server.add("POST", "/v1/datasets", httpx.Response(201, json={
        "id": "ds_42", "sha256": "ab", "format": "csv", "size_bytes": 20, "created": True,
        "created_at": "2026-11-27T13:00:00Z",
        "fields": [{"name": "y", "shape": [2], "dtype": "int64"}, {"name": "sigma", "shape": [2], "dtype": "int64"}]}))
    server.add("POST", "/v1/jobs", httpx.Response(202, json=job_json("j")))
    with server.client() as client:
        client.submit("catalog:eight_schools_noncentered", data=csv)
    upload, submit = server.requests
    assert upload.url.path == "/v1/datasets"
    assert upload.headers["content-type"].startswith("multipart/form-data")
    assert b'filename="schools.csv"' in upload.content and b"28,15" in upload.content
    assert json.loads(submit.content)["data"] == {"dataset_id": "ds_42"}


def test_upload_dataset_from_dict_is_json(server) -> None:
    server.add("POST", "/v1/datasets", httpx.Response(201, json={"id": "ds_1", "sha256": "x", "fields": []}))
    with server.client() as client:
        dataset = client.upload_dataset({"y": [1, 2]}, name="tiny")
    assert dataset.id == "ds_1"
    assert json.loads(server.requests[0].content) == {"data": {"y": [1, 2]}, "name": "tiny"}


def test_env_configuration(monkeypatch) -> None:
    from vihub_client import Client

    monkeypatch.setenv("VIHUB_URL", "http://env.example:9000/")
    monkeypatch.setenv("VIHUB_API_KEY", "env-key")
    client = Client()
    assert client.settings.base_url == "http://env.example:9000"
    assert client.settings.headers()["Authorization"] == "Bearer env-key"
    client.close()
    monkeypatch.delenv("VIHUB_URL")
    monkeypatch.delenv("VIHUB_API_KEY")
    client = Client()
    assert client.settings.base_url == "http://127.0.0.1:8000" and "Authorization" not in client.settings.headers()
    client.close()
