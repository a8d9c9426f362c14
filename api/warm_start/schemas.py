"""Request body of ``POST /v1/jobs/{id}/continue``."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.jobs.schemas import Labels


class ContinueRequest(BaseModel):
    """Run a finished job further: ``steps`` more, from where it stopped."""

    model_config = ConfigDict(extra="forbid")

    steps: Annotated[int, Field(ge=1, description="Extra steps on top of the steps the job has done")]
    labels: Labels = Field(default_factory=dict, description="Added to the source job's labels")
