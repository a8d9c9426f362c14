"""Request and response models of ``/v1/jobs``.

``JobCreate`` is the engine's ``JobSpec`` (``model``, ``guide``, ``inference``,
``outputs``; unknown fields are refused) plus what only the service knows about:
``data`` (inline arrays or a dataset id), ``webhook`` and ``labels``.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from api.errors import Problem
from inference.spec import JobSpec

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
JobStateName = Literal["queued", "running", "succeeded", "failed", "cancelled"]

_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
MAX_LABELS = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InlineData(_Strict):
    """Arrays and numbers by the model's parameter names, e.g. ``{"J": 8, "y": [...]}``."""

    inline: dict[str, Any] = Field(
        description="Field name -> number or (nested) list of numbers. Integers stay integers."
    )


class DatasetData(_Strict):
    """A dataset uploaded earlier with ``POST /v1/datasets``."""

    dataset_id: Annotated[str, Field(min_length=1, max_length=64)]


def _data_kind(value: Any) -> str | None:
    if isinstance(value, InlineData):
        return "inline"
    if isinstance(value, DatasetData):
        return "dataset"
    if isinstance(value, dict):
        kinds = [k for k in ("inline", "dataset_id") if k in value]
        if len(kinds) == 1:
            return "inline" if kinds[0] == "inline" else "dataset"
    return None


DataSpec = Annotated[
    Union[Annotated[InlineData, Tag("inline")], Annotated[DatasetData, Tag("dataset")]],
    Discriminator(
        _data_kind,
        custom_error_type="data_kind",
        custom_error_message='data must be {"inline": {...}} or {"dataset_id": "..."}, exactly one of the two',
    ),
]


class WebhookSpec(_Strict):
    """Called once when the job ends (signed per the Standard Webhooks spec)."""

    url: AnyHttpUrl


Labels = Annotated[dict[str, Annotated[str, Field(max_length=256)]], Field(max_length=MAX_LABELS)]


def first_non_finite(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The path of the first NaN or infinite number in a parsed JSON value, else None.

    Python's JSON parser accepts the non-standard ``NaN``/``Infinity`` literals, but
    nothing downstream can hold them: Postgres refuses them in a JSON column (a spec,
    a sweep point), so they are refused at the boundary with a pointer."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return at
        if isinstance(item, dict):
            stack.extend((child, (*at, str(key))) for key, child in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, (*at, str(i))) for i, child in enumerate(item))
    return None


def refuse_non_finite(value: Any, where: str) -> Any:
    found = first_non_finite(value)
    if found is not None:
        pointer = "/" + "/".join((where, *found))
        raise ValueError(f"{pointer}: numbers must be finite (NaN and Infinity are not JSON numbers)")
    return value


class JobCreate(JobSpec):
    """The body of ``POST /v1/jobs`` and ``POST /v1/validate``."""

    data: DataSpec | None = Field(
        None, description="Omit only for a catalog model: its example data is used."
    )
    webhook: WebhookSpec | None = None
    labels: Labels = Field(default_factory=dict)

    @field_validator("model", "guide", "inference", "outputs", mode="before")
    @classmethod
    def _finite_numbers(cls, value: Any, info: Any) -> Any:
        # ``data`` has its own check (422 invalid-data with the field's pointer).
        return refuse_non_finite(value, info.field_name)

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not _LABEL_KEY.match(key):
                raise ValueError(
                    f"label key {key!r} must be 1-63 characters of letters, digits, '.', '_', '/', '-', "
                    "starting with a letter or digit"
                )
        return labels

    def spec(self) -> JobSpec:
        """The engine's part of the body."""
        return JobSpec.model_validate(self.model_dump(include=set(JobSpec.model_fields), mode="json"))


class Progress(BaseModel):
    step: int = 0
    steps: int
    loss: float | None = None
    smoothed_loss: float | None = None
    steps_per_s: float | None = None
    eta_s: float | None = None


class JobLinks(BaseModel):
    self: str
    events: str
    cancel: str
    params: str
    loss: str
    samples: str
    log_probs: str
    diagnostics: str
    summary: str
    predict: str


class JobOut(BaseModel):
    id: str
    state: JobStateName
    progress: Progress
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: Problem | None = None
    attempts: int = 0
    queue: str
    labels: dict[str, str] = Field(default_factory=dict)
    dataset_id: str | None = None
    model: dict[str, Any] = Field(description="The model part of the spec (source or catalog name)")
    spec: dict[str, Any] = Field(
        default_factory=dict,
        description="The job spec as run (model, guide, inference, outputs; data is referenced by dataset_id)",
    )
    links: JobLinks


class JobList(BaseModel):
    items: list[JobOut]
    next_page_token: str | None = Field(None, description="Pass as page_token for the next page; null at the end")


class ValidationReportOut(BaseModel):
    """The validation pass's report (model/guide alignment, shapes, supports, warnings)."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    report: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class PredictRequest(_Strict):
    data: DataSpec
    num_samples: Annotated[int, Field(ge=1, le=10_000)] = 100


class PredictOut(BaseModel):
    predictive: dict[str, Any] = Field(description="Site name -> array [num_samples, ...]")
