"""The generic repository base: one model class, one caller-owned ``Session``.

Repositories only query and flush; they never commit. The caller (an API request
dependency, a worker task step, a CLI command) owns the transaction, e.g.::

    with session_factory().begin() as session:
        job = JobRepository(session).get(job_id)
"""

from __future__ import annotations

from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Insert
from sqlalchemy.orm import Session

from store.models import Base

ModelT = TypeVar("ModelT", bound=Base)


class Repository(Generic[ModelT]):
    model: ClassVar[type[Base]]

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def get(self, id: Any) -> ModelT | None:
        """The row with primary key ``id`` (any tenant), or None."""
        return self.session.get(self.model, id)  # type: ignore[return-value]

    def add(self, obj: ModelT) -> ModelT:
        """Add and flush (so defaults and ids are populated)."""
        self.session.add(obj)
        self.session.flush()
        return obj

    def _insert(self) -> Insert:
        """A dialect-specific INSERT of this model, for ON CONFLICT clauses.

        Postgres and SQLite spell ``ON CONFLICT`` the same way; SQLAlchemy has one
        ``insert`` construct per dialect.
        """
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - vihub supports Postgres and SQLite
            raise NotImplementedError(f"unsupported dialect {self.dialect!r}")
        return insert(self.model)
