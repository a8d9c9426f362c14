"""Request and response models of ``/v1/datasets``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class DatasetCreate(BaseModel):
    """JSON upload: ``{"name": "schools", "data": {"J": 8, "y": [...], "sigma": [...]}}``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    data: dict[str, Any] = Field(description="Field name -> number or (nested) list of numbers")


class FieldInfo(BaseModel):
    name: str
    shape: list[int]
    dtype: str


class DatasetOut(BaseModel):
    id: str
    name: str | None = None
    sha256: str = Field(description="sha256 of the canonical NPZ; equal data, equal digest")
    format: str = Field(description="What it was uploaded as: json, csv, npz, parquet, inline")
    size_bytes: int
    fields: list[FieldInfo]
    created_at: datetime
    created: bool = Field(False, description="False when the same data already existed for this tenant")


class DatasetList(BaseModel):
    items: list[DatasetOut]


SHA256_PATTERN = r"^[0-9a-f]{64}$"


class UploadCreate(BaseModel):
    """Start a resumable chunked upload: the file's size and sha256 are declared first."""

    model_config = ConfigDict(extra="forbid")

    # strict: a size is a JSON integer (not true, "10" or 1e3, which lax mode would coerce).
    size_bytes: int = Field(ge=1, strict=True, description="The whole file's size in bytes")
    sha256: str = Field(pattern=SHA256_PATTERN, description="The whole file's sha256, lowercase hex")
    part_bytes: int | None = Field(None, ge=1024, strict=True,
                                   description="Part size; the server's default when absent")
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    filename: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        None, description="Used to tell the format (.npz, .parquet, .csv, .json) and as the default name")
    content_type: Annotated[str, Field(max_length=100)] | None = None


class UploadPartOut(BaseModel):
    part_number: int
    size_bytes: int
    sha256: str


class UploadOut(BaseModel):
    id: str
    state: str = Field(description="open, completing (a complete is in progress), complete or aborted")
    size_bytes: int
    sha256: str
    part_bytes: int
    part_count: int
    parts: list[UploadPartOut] = Field(description="Parts received, by number (1-based)")
    missing_parts: list[int] = Field(description="Part numbers still to send")
    name: str | None = None
    filename: str | None = None
    dataset_id: str | None = Field(None, description="Set once complete")
    created_at: datetime
    expires_at: datetime
