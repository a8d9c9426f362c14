"""``POST /v1/validate`` takes the job body (``JobCreate``) and returns the report."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ValidateOut(BaseModel):
    valid: bool = True
    report: dict[str, Any] = Field(default_factory=dict, description="The engine's validation report")
