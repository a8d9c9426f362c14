"""What ``Client`` and ``AsyncClient`` (and their jobs) share beyond single calls:
submit-body preparation and the download plan."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vihub_client import _inputs, _ops
from vihub_client._http import Call
from vihub_client.errors import VihubError


def prepare_submit(
    *,
    model: Any,
    entry: str | None,
    guide: Any,
    data: Any,
    inference: Mapping[str, Any] | None,
    outputs: Mapping[str, Any] | None,
    labels: Any,
    webhook: Any,
) -> tuple[dict[str, Any], dict[str, Any] | _inputs.UploadFile | None]:
    """The job body without ``data``, and the data plan (inline/dataset id, or a file to upload)."""
    body = _inputs.build_job_body(
        model=_inputs.normalize_model(model, entry),
        guide=_inputs.normalize_guide(guide),
        data=None,
        inference=_inputs.normalize_inference(inference),
        outputs=dict(outputs) if outputs else None,
        labels=_inputs.parse_labels(labels),
        webhook=webhook,
    )
    return body, _inputs.plan_data(data)


def with_data(body: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return body
    return {**body, "data": data}


# Artifacts written by ``download(dir)`` with no format: every form a user may want.
DEFAULT_DOWNLOADS: tuple[tuple[str, str], ...] = (
    ("params", "json"),
    ("params", "safetensors"),
    ("params", "pt"),
    ("loss", "json"),
    ("samples", "npz"),
    ("samples", "netcdf"),
    ("log-probs", "npz"),
    ("diagnostics", "json"),
    ("summary", "json"),
)


def download_plan(fmt: str | None) -> list[tuple[str, str, str]]:
    """``(resource, format, file name)`` for ``download(dir, format)``.

    With a format, each resource comes in that format where the server offers it and as
    JSON otherwise (``diagnostics`` and ``summary`` are JSON only); with ``netcdf``,
    ``samples.nc`` is the whole InferenceData and the log-probs come as NPZ.
    """
    if fmt is None:
        pairs = list(DEFAULT_DOWNLOADS)
    else:
        if fmt not in _ops.RESULT_FORMATS:
            raise ValueError(f"format must be one of {', '.join(_ops.RESULT_FORMATS)}")
        pairs = [(r, _form_for(r, fmt, offered)) for r, offered in _ops.RESULT_RESOURCES.items()]
    return [(r, f, f"{r.replace('-', '_')}.{_ops.FORMAT_EXTENSIONS[f]}") for r, f in pairs]


def _form_for(resource: str, fmt: str, offered: tuple[str, ...]) -> str:
    # samples.nc is the whole InferenceData (posterior, posterior_predictive,
    # log_likelihood, sample_stats); the per-site trace log-probs it does not hold come as NPZ.
    if fmt == "netcdf" and resource == "log-probs":
        return "npz"
    return fmt if fmt in offered else "json"


def optional_in_default(resource: str, fmt: str) -> bool:
    """Downloads that a job may legitimately lack (skipped, not an error, in the default plan)."""
    return (resource, fmt) in {("params", "pt"), ("params", "safetensors"), ("samples", "netcdf")}


@dataclass
class DownloadStep:
    filename: str
    call: Call
    optional: bool

    def skip(self, error: VihubError) -> bool:
        """A missing optional form (404/406) is skipped; anything else is the caller's error."""
        return self.optional and error.status in (404, 406)


def download_steps(job_id: str, fmt: str | None) -> list[DownloadStep]:
    """What ``download(dir, format)`` fetches, as raw bytes per file."""
    steps = []
    for resource, form, filename in download_plan(fmt):
        call = _ops.result(job_id, resource, form)
        call.parse = _raw
        steps.append(DownloadStep(filename, call, fmt is None and optional_in_default(resource, form)))
    return steps


def _raw(response: httpx.Response) -> bytes:
    return response.content


def write_job(directory: Path, job: dict[str, Any]) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "job.json"
    path.write_text(json.dumps(job, indent=2))
    return {"job.json": path}
