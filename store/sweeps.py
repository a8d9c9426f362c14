"""Sweeps: tables ``sweeps`` and ``sweep_members`` (migration ``0004_sweeps``) and their repository.

A sweep is a base job body and a list of points (spec overrides); each point is a
normal job (``jobs`` row, labelled ``vihub/sweep=<id>``), linked by ``sweep_members``.
Job states stay the jobs' own: a sweep's progress is read from its members.

``SweepRepository`` methods (query and flush only, never commit):
- ``create(**fields) -> Sweep``
- ``add_member(sweep_id, position, job_id, point) -> SweepMember``
- ``get_for_tenant(tenant_id, sweep_id) -> Sweep | None`` (not deleted)
- ``get_by_idempotency_key(tenant_id, key) -> Sweep | None`` (deleted ones too: a key
  is never reused for another body)
- ``list_for_tenant(tenant_id, limit) -> list[Sweep]`` newest first
- ``members(sweep_id) -> list[tuple[SweepMember, Job]]`` in point order, without
  member jobs deleted on their own (``DELETE /v1/jobs/{id}`` hides a job from every read)
- ``mark_cancel_requested(sweep_id)``, ``soft_delete(tenant_id, sweep_id) -> bool``
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, Job, JSONType, new_id, utcnow
from store.repositories.base import Repository


class Sweep(Base):
    """A sweep: ``base`` is the base job body (``data`` replaced by the dataset id), ``axes``
    what the request gave (``{"axes": {...}}`` or ``{"points": [...]}``)."""

    __tablename__ = "sweeps"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_sweeps_tenant_idempotency_key"),
        Index("ix_sweeps_tenant_created_id", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    base: Mapped[dict[str, Any]] = mapped_column(JSONType)
    axes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class SweepMember(Base):
    """Point ``position`` of a sweep and the job that runs it."""

    __tablename__ = "sweep_members"

    sweep_id: Mapped[str] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    point: Mapped[dict[str, Any]] = mapped_column(JSONType)


class SweepRepository(Repository[Sweep]):
    model = Sweep

    def create(self, **fields: Any) -> Sweep:
        return self.add(Sweep(created_at=fields.pop("created_at", None) or utcnow(), **fields))

    def add_member(self, sweep_id: str, position: int, job_id: str, point: dict[str, Any]) -> SweepMember:
        member = SweepMember(sweep_id=sweep_id, position=position, job_id=job_id, point=point)
        self.session.add(member)
        self.session.flush()
        return member

    def get_for_tenant(self, tenant_id: str, sweep_id: str) -> Sweep | None:
        return self.session.scalar(select(Sweep).where(
            Sweep.id == sweep_id, Sweep.tenant_id == tenant_id, Sweep.deleted_at.is_(None)))

    def get_by_idempotency_key(self, tenant_id: str, key: str) -> Sweep | None:
        return self.session.scalar(select(Sweep).where(Sweep.tenant_id == tenant_id, Sweep.idempotency_key == key))

    def list_for_tenant(self, tenant_id: str, limit: int = 50) -> list[Sweep]:
        return list(self.session.scalars(
            select(Sweep).where(Sweep.tenant_id == tenant_id, Sweep.deleted_at.is_(None))
            .order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit)))

    def members(self, sweep_id: str) -> list[tuple[SweepMember, Job]]:
        rows = self.session.execute(
            select(SweepMember, Job).join(Job, Job.id == SweepMember.job_id)
            .where(SweepMember.sweep_id == sweep_id, Job.deleted_at.is_(None)).order_by(SweepMember.position))
        return [(member, job) for member, job in rows]

    def member_states(self, sweep_ids: list[str]) -> list[tuple[str, str, dict[str, Any] | None, int | None]]:
        """``(sweep_id, state, progress, spec steps)`` of the undeleted members of these
        sweeps: what a sweep's summary needs, without loading the members' specs."""
        if not sweep_ids:
            return []
        steps = Job.spec[("inference", "steps")].as_integer()
        rows = self.session.execute(
            select(SweepMember.sweep_id, Job.state, Job.progress, steps).join(Job, Job.id == SweepMember.job_id)
            .where(SweepMember.sweep_id.in_(sweep_ids), Job.deleted_at.is_(None)))
        return [(sweep_id, state, progress, spec_steps) for sweep_id, state, progress, spec_steps in rows]

    def mark_cancel_requested(self, sweep_id: str) -> None:
        self.session.execute(update(Sweep).where(Sweep.id == sweep_id).values(cancel_requested=True))

    def soft_delete(self, tenant_id: str, sweep_id: str, now: datetime | None = None) -> bool:
        result = self.session.execute(
            update(Sweep).where(Sweep.id == sweep_id, Sweep.tenant_id == tenant_id, Sweep.deleted_at.is_(None))
            .values(deleted_at=now or utcnow()))
        return result.rowcount == 1
