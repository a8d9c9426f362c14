"""Response model of ``/v1/capabilities``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Choice(BaseModel):
    name: str
    options: list[str] | None = Field(
        description="Options the job body may set for this choice; null when the server "
        "could not list them just now (its trial-run processes were busy)")


class GuideChoices(BaseModel):
    auto: list[Choice] = Field(description="Autoguides, for `guide.auto`")
    default: str
    init_loc_fns: list[str] | None = Field(description="Names for `guide.options.init_loc_fn`; null as for options")


class ElboChoices(BaseModel):
    names: list[Choice]
    default: str


class OptimizerChoices(BaseModel):
    names: list[Choice]
    default: str
    schedulers: list[str] = Field(description="Names for `inference.scheduler.name`")


class FormatOut(BaseModel):
    name: str = Field(description="The `?format=` value")
    media_type: str = Field(description="The `Accept` value")
    extension: str


class ResultOut(BaseModel):
    name: str = Field(description="The resource under `/v1/jobs/{id}/`")
    formats: list[str]


class OutputOption(BaseModel):
    name: str
    default: Any


class KhatReading(BaseModel):
    reading: str
    below: float | None = Field(description="k-hat below this (and at or above the previous bound) reads so; null: no bound")


class KhatOut(BaseModel):
    readings: list[KhatReading] | None = Field(
        description="In order; null as for options. A job's diagnostics carry its own "
        "`k_hat_reading`, which may also be `unknown` or `not applicable`")


class CapabilitiesOut(BaseModel):
    guides: GuideChoices
    elbos: ElboChoices
    optimizers: OptimizerChoices
    devices: list[str]
    float_dtypes: list[str]
    outputs: list[OutputOption] = Field(description="Fields of the job body's `outputs` with their defaults")
    formats: list[FormatOut]
    results: list[ResultOut]
    k_hat: KhatOut
