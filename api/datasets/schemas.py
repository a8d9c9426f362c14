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
