"""Every REST operation of the v1 API, described once as a ``Call``.

``Client`` and ``AsyncClient`` execute these; nothing here does I/O. Response parsing
that both flavours need (datasets, result downloads) lives here too.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from vihub_client import _formats
from vihub_client._http import Call
from vihub_client.models import Dataset

RESULT_FORMATS = ("json", "npz", "safetensors", "netcdf", "pt")
FORMAT_EXTENSIONS = {"json": "json", "npz": "npz", "safetensors": "safetensors", "netcdf": "nc", "pt": "pt"}
# Result resources and the formats the server offers for each (see api/jobs/results_router.py).
RESULT_RESOURCES: dict[str, tuple[str, ...]] = {
    "params": ("json", "npz", "safetensors", "pt"),
    "loss": ("json", "npz", "safetensors"),
    "samples": ("json", "npz", "safetensors", "netcdf", "pt"),
    "log-probs": ("json", "npz", "safetensors", "netcdf", "pt"),
    "diagnostics": ("json",),
    "summary": ("json",),
}


class AutoKey:
    """Sentinel: generate a fresh Idempotency-Key for this submit (reused across its retries)."""

    def __repr__(self) -> str:
        return "AUTO"


AUTO = AutoKey()


def _job_path(job_id: str, *rest: str) -> str:
    return "/".join(["/v1/jobs", quote(str(job_id), safe=""), *rest])


def _json(response: httpx.Response) -> Any:
    return response.json() if response.content else None


def _bytes(response: httpx.Response) -> bytes:
    return response.content


def _dataset(response: httpx.Response) -> Dataset:
    return Dataset.from_json(response.json())


# ---------------------------------------------------------------------------------------
# Jobs


def submit(body: dict[str, Any], idempotency_key: str | AutoKey | None) -> Call:
    key = uuid.uuid4().hex if isinstance(idempotency_key, AutoKey) else idempotency_key
    headers = {"Idempotency-Key": key} if key else {}
    # With a key the server deduplicates, so resending after a lost response is safe.
    return Call("POST", "/v1/jobs", json=body, headers=headers, idempotent=bool(key), parse=_json)


def get_job(job_id: str) -> Call:
    return Call("GET", _job_path(job_id), parse=_json)


def list_jobs(
    *,
    state: str | list[str] | None = None,
    label: dict[str, str] | list[str] | None = None,
    page_token: str | None = None,
    page_size: int | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> Call:
    states = [state] if isinstance(state, str) else list(state or [])
    if isinstance(label, dict):
        labels = [f"{k}={v}" for k, v in label.items()]
    else:
        labels = list(label or [])
    params: dict[str, Any] = {
        "state": states or None,
        "label": labels or None,
        "page_token": page_token,
        "page_size": page_size,
        "created_after": created_after,
        "created_before": created_before,
    }
    return Call("GET", "/v1/jobs", params=params, parse=_json)


def cancel_job(job_id: str) -> Call:
    # Cancelling twice has the same effect as once.
    return Call("POST", _job_path(job_id, "cancel"), idempotent=True, parse=_json)


def delete_job(job_id: str) -> Call:
    return Call("DELETE", _job_path(job_id), idempotent=True, parse=lambda r: None)


def events(job_id: str, last_event_id: str | None, read_timeout: float) -> Call:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return Call(
        "GET",
        _job_path(job_id, "events"),
        headers=headers,
        timeout=httpx.Timeout(10.0, read=read_timeout),
    )


def result(job_id: str, resource: str, fmt: str = "json", **params: Any) -> Call:
    """A result download: JSON parsed, binary formats as bytes."""
    if resource not in RESULT_RESOURCES:
        raise ValueError(f"unknown result {resource!r}; one of {', '.join(RESULT_RESOURCES)}")
    if fmt not in RESULT_RESOURCES[resource]:
        raise ValueError(f"{resource} is available as {', '.join(RESULT_RESOURCES[resource])}, not {fmt!r}")
    query = dict(params)
    if fmt != "json":
        query["format"] = fmt
    return Call("GET", _job_path(job_id, resource), params=query, parse=_json if fmt == "json" else _bytes)


def samples_call(job_id: str) -> Call:
    """``/samples`` as a flat dict of arrays (npz when numpy is installed, else JSON lists)."""
    if _formats.have_numpy():
        call = result(job_id, "samples", "npz")
        call.parse = lambda r: _formats.load_npz(r.content)
    else:
        call = result(job_id, "samples", "json")
        call.parse = lambda r: _formats.samples_from_json(r.json())
    return call


def log_probs_call(job_id: str) -> Call:
    if _formats.have_numpy():
        call = result(job_id, "log-probs", "npz")
        call.parse = lambda r: _formats.load_npz(r.content)
    else:
        call = result(job_id, "log-probs", "json")
        call.parse = lambda r: _formats.log_probs_from_json(r.json())
    return call


def _strip_job_id(body: Any) -> Any:
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "job_id"}
    return body


def params_call(job_id: str) -> Call:
    call = result(job_id, "params", "json")
    call.parse = lambda r: _strip_job_id(r.json())
    return call


def loss_call(job_id: str, max_points: int | None) -> Call:
    call = result(job_id, "loss", "json", max_points=max_points)
    call.parse = lambda r: _strip_job_id(r.json())
    return call


def summary_call(job_id: str) -> Call:
    call = result(job_id, "summary", "json")
    call.parse = lambda r: dict(r.json().get("summary") or {})
    return call


def diagnostics_call(job_id: str) -> Call:
    def parse(r: httpx.Response) -> dict[str, Any]:
        body = r.json()
        out = dict(body.get("diagnostics") or {})
        out.setdefault("meta", body.get("meta") or {})
        return out

    call = result(job_id, "diagnostics", "json")
    call.parse = parse
    return call


def predict(job_id: str, data: dict[str, Any], num_samples: int) -> Call:
    def parse(r: httpx.Response) -> dict[str, Any]:
        return _formats.as_arrays(r.json().get("predictive") or {})

    return Call(
        "POST", _job_path(job_id, "predict"), json={"data": data, "num_samples": num_samples},
        idempotent=True, parse=parse,  # a read: it changes nothing on the server
    )


# ---------------------------------------------------------------------------------------
# Datasets, catalog, validation, health


def upload_dataset_file(path: Path, name: str | None = None) -> Call:
    content = path.read_bytes()
    form = {"name": name} if name else None
    return Call(
        "POST",
        "/v1/datasets",
        files={"file": (path.name, content, _media_type(path))},
        data=form,
        idempotent=True,  # content-addressed: the same bytes give the same dataset
        parse=_dataset,
    )


def upload_dataset_json(fields: dict[str, Any], name: str | None = None) -> Call:
    body: dict[str, Any] = {"data": fields}
    if name:
        body["name"] = name
    return Call("POST", "/v1/datasets", json=body, idempotent=True, parse=_dataset)


def _media_type(path: Path) -> str:
    return {
        ".csv": "text/csv",
        ".npz": "application/x-npz",
        ".parquet": "application/vnd.apache.parquet",
        ".pq": "application/vnd.apache.parquet",
        ".json": "application/json",
    }.get(path.suffix.lower(), "application/octet-stream")


def get_dataset(dataset_id: str) -> Call:
    return Call("GET", "/v1/datasets/" + quote(dataset_id, safe=""), parse=_dataset)


def list_datasets(limit: int | None = None) -> Call:
    return Call("GET", "/v1/datasets", params={"page_size": limit},
                parse=lambda r: [Dataset.from_json(d) for d in r.json().get("items", [])])


def catalog() -> Call:
    return Call("GET", "/v1/catalog", parse=lambda r: list(r.json().get("items", [])))


def catalog_entry(name: str) -> Call:
    return Call("GET", "/v1/catalog/" + quote(name, safe=""), parse=_json)


def capabilities() -> Call:
    return Call("GET", "/v1/capabilities", parse=_json)


def validate(body: dict[str, Any]) -> Call:
    return Call("POST", "/v1/validate", json=body, idempotent=True, parse=_json)


def health() -> Call:
    return Call("GET", "/healthz", parse=_json)
