"""Loss curves.

``LossPointRepository`` methods:
- ``upsert_many(job_id, points)`` — one ``INSERT ... ON CONFLICT (job_id, step) DO
  UPDATE`` executed over all points: a redelivered or resumed run re-writes the same
  step keys, never duplicates, and the stored value is the one from the run that
  produced the final result;
- ``delete_after(job_id, step)`` — drop points past a checkpoint before resuming (so a
  resumed run that stops earlier leaves no stale tail); ``step=-1`` clears the curve;
- ``list_for_job(job_id, after_step=None, limit=None) -> list[(step, loss)]`` ascending;
- ``count(job_id)``, ``last(job_id) -> (step, loss) | None``.

Non-finite losses are stored as NULL (SQLite has no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import delete, func, select

from store.models import LossPoint
from store.repositories.base import Repository


class LossPointRepository(Repository[LossPoint]):
    model = LossPoint

    def upsert_many(self, job_id: str, points: Iterable[tuple[int, float | None]]) -> int:
        rows = []
        for step, loss in points:
            value = float(loss) if loss is not None and math.isfinite(loss) else None
            rows.append({"job_id": job_id, "step": int(step), "loss": value})
        # One value per step: the last one wins (a batch never repeats a step, but be safe).
        rows = list({r["step"]: r for r in rows}.values())
        if not rows:
            return 0
        # One single-row statement executed over all rows (the driver's executemany): a
        # VALUES list of 1,000 rows is a new 3,000-parameter statement for SQLAlchemy to
        # compile each time, ~8x slower, and it is on the path of every job's final write.
        stmt = self._insert()
        stmt = stmt.on_conflict_do_update(
            index_elements=[LossPoint.job_id, LossPoint.step],
            set_={"loss": stmt.excluded.loss},
        )
        self.session.execute(stmt, rows)
        return len(rows)

    def delete_after(self, job_id: str, step: int) -> int:
        result = self.session.execute(
            delete(LossPoint).where(LossPoint.job_id == job_id, LossPoint.step > step)
        )
        return result.rowcount

    def list_for_job(
        self, job_id: str, after_step: int | None = None, limit: int | None = None
    ) -> list[tuple[int, float | None]]:
        stmt = select(LossPoint.step, LossPoint.loss).where(LossPoint.job_id == job_id)
        if after_step is not None:
            stmt = stmt.where(LossPoint.step > after_step)
        stmt = stmt.order_by(LossPoint.step)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [(step, loss) for step, loss in self.session.execute(stmt)]

    def count(self, job_id: str) -> int:
        return self.session.scalar(
            select(func.count()).select_from(LossPoint).where(LossPoint.job_id == job_id)
        ) or 0

    def last(self, job_id: str) -> tuple[int, float | None] | None:
        row = self.session.execute(
            select(LossPoint.step, LossPoint.loss)
            .where(LossPoint.job_id == job_id)
            .order_by(LossPoint.step.desc())
            .limit(1)
        ).first()
        return (row[0], row[1]) if row else None
