"""Response models of ``/v1/catalog``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CatalogItem(BaseModel):
    name: str
    description: str
    href: str = Field(description="URL of the full entry")


class CatalogList(BaseModel):
    items: list[CatalogItem]


class CatalogEntryOut(BaseModel):
    name: str
    description: str
    source: str = Field(description="The model, in the model language")
    entry: str = Field(description="Name of the model function in `source`")
    data_schema: dict[str, Any] = Field(default_factory=dict, description="Fields the model takes")
    suggested: dict[str, Any] = Field(default_factory=dict, description="Guide / ELBO / optimizer settings that suit it")
    example_data: dict[str, Any] = Field(default_factory=dict, description="A small dataset it runs on")
    example_job: dict[str, Any] = Field(description="A ready-to-POST body for /v1/jobs")
