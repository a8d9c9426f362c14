"""Request and response models of ``/v1/sweeps``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from api.jobs.schemas import JobCreate, JobOut, Labels, refuse_non_finite

SWEEP_LABEL = "vihub/sweep"
POINT_LABEL = "vihub/sweep-point"
# Labels the service sets on member jobs (and that a continued job must not inherit).
SWEEP_LABELS = (SWEEP_LABEL, POINT_LABEL)

AxisPath = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")]


class SweepCreate(BaseModel):
    """A base job body and the spec fields to vary: ``axes`` (a grid: every combination,
    the first axis slowest) or ``points`` (a list of override sets). Paths are dotted spec
    fields: ``guide``, ``guide.auto``, ``inference.optimizer.lr``, ``inference.elbo.num_particles``,
    ``inference.seed``, ``model`` (another source or catalog model), ``outputs.num_samples``..."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(max_length=200)] | None = None
    base: JobCreate
    axes: dict[AxisPath, Annotated[list[Any], Field(min_length=1, max_length=1000)]] | None = None
    points: Annotated[list[dict[AxisPath, Any]], Field(min_length=1, max_length=1000)] | None = None
    labels: Labels = Field(default_factory=dict, description="Added to every member job's labels")

    @field_validator("axes", "points", mode="before")
    @classmethod
    def _finite_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # A point is stored as given (``sweep_members.point``), even where a later path of
        # the same point overwrites the value in the job body.
        return refuse_non_finite(value, info.field_name)

    @model_validator(mode="after")
    def _axes_or_points(self) -> "SweepCreate":
        if (self.axes is None) == (self.points is None):
            raise ValueError("give exactly one of axes (a grid) or points (a list)")
        if self.axes is not None and not self.axes:
            raise ValueError("axes must name at least one spec field")
        return self


class SweepCounts(BaseModel):
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


class SweepMemberOut(BaseModel):
    position: int
    point: dict[str, Any]
    job: JobOut


class SweepLinks(BaseModel):
    self: str
    comparison: str
    cancel: str


class SweepSummary(BaseModel):
    """A sweep as lists show it: state, counts and progress, not its members."""

    id: str
    name: str | None = None
    state: str = Field(description="queued | running | finished (every member final) | cancelled")
    done: bool
    counts: SweepCounts
    progress: float = Field(description="Fraction of all members' steps done")
    member_count: int = Field(description="Members not deleted")
    created_at: datetime
    labels: dict[str, Any] = Field(default_factory=dict)
    links: SweepLinks


class SweepOut(SweepSummary):
    """One sweep in full: its axes, base body and members (each member's job)."""

    axes: dict[str, Any]
    base: dict[str, Any]
    members: list[SweepMemberOut]


class SweepList(BaseModel):
    items: list[SweepSummary]
