"""Plain data objects the client returns: ``Progress``, ``Dataset``, and ``JobData``, the
state a ``Job``/``AsyncJob`` wraps (the sync and async jobs share all of it and differ only
in the methods that do I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vihub_client.errors import VihubError

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Progress:
    """Where a job's training loop is: step of steps, latest loss, rate and ETA."""

    step: int = 0
    steps: int | None = None
    loss: float | None = None
    smoothed_loss: float | None = None
    steps_per_s: float | None = None
    eta_s: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Progress:
        data = data or {}
        return cls(
            step=int(data.get("step") or 0),
            steps=data.get("steps"),
            loss=data.get("loss"),
            smoothed_loss=data.get("smoothed_loss"),
            steps_per_s=data.get("steps_per_s"),
            eta_s=data.get("eta_s"),
        )

    @property
    def fraction(self) -> float | None:
        return self.step / self.steps if self.steps else None


@dataclass
class Dataset:
    """An uploaded dataset: ``id`` (pass it as ``data=``), ``fields`` with shape and dtype, ``sha256``."""

    id: str
    sha256: str | None = None
    name: str | None = None
    format: str | None = None
    size_bytes: int | None = None
    fields: list[dict[str, Any]] = field(default_factory=list)
    created: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dataset:
        return cls(
            id=str(data["id"]),
            sha256=data.get("sha256"),
            name=data.get("name"),
            format=data.get("format"),
            size_bytes=data.get("size_bytes"),
            fields=list(data.get("fields") or []),
            created=data.get("created"),
            raw=dict(data),
        )


class JobData:
    """The job JSON of ``GET /v1/jobs/{id}`` with typed accessors, shared by ``Job`` and ``AsyncJob``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data: dict[str, Any] = {}
        self._update(data)

    def _update(self, data: dict[str, Any]) -> None:
        self._data = dict(data)

    def _apply_progress(self, progress: dict[str, Any]) -> None:
        """Merge an SSE ``progress`` event (``{id, state, step, steps, loss, ...}``)."""
        merged = dict(self._data.get("progress") or {})
        merged.update({k: v for k, v in progress.items() if k not in ("id", "state")})
        self._data["progress"] = merged
        if progress.get("state"):
            self._data["state"] = progress["state"]

    @property
    def raw(self) -> dict[str, Any]:
        """The job JSON as the server last sent it."""
        return dict(self._data)

    @property
    def id(self) -> str:
        return str(self._data["id"])

    @property
    def state(self) -> str:
        return str(self._data.get("state") or "queued")

    @property
    def done(self) -> bool:
        """True once the job is ``succeeded``, ``failed`` or ``cancelled``."""
        return self.state in FINAL_STATES

    @property
    def progress(self) -> Progress:
        return Progress.from_json(self._data.get("progress"))

    @property
    def labels(self) -> dict[str, str]:
        return dict(self._data.get("labels") or {})

    @property
    def links(self) -> dict[str, str]:
        return dict(self._data.get("links") or {})

    @property
    def created_at(self) -> datetime | None:
        return _parse_time(self._data.get("created_at"))

    @property
    def started_at(self) -> datetime | None:
        return _parse_time(self._data.get("started_at"))

    @property
    def finished_at(self) -> datetime | None:
        return _parse_time(self._data.get("finished_at"))

    @property
    def error(self) -> VihubError | None:
        """Why the job failed, as the typed problem the server recorded (``None`` otherwise)."""
        problem = self._data.get("error")
        if not isinstance(problem, dict):
            return None
        return VihubError.from_problem({"title": "Job failed", **problem})

    def __repr__(self) -> str:
        p = self.progress
        where = f" step {p.step}/{p.steps}" if p.steps else ""
        return f"<{type(self).__name__} {self.id} {self.state}{where}>"
