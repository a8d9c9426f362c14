"""Sweeps: ``sweeps`` (a base job body and its axes) and ``sweep_members`` (point -> job).

Models: ``store.sweeps``. Child jobs are ordinary ``jobs`` rows.

Revision ID: 0004_sweeps
Revises: 0003_quota_counter_idempotency
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_sweeps"
down_revision: str | Sequence[str] | None = "0003_quota_counter_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("base", JSONType, nullable=False),
        sa.Column("axes", JSONType, nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_fingerprint", sa.String(64), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_sweeps_tenant_idempotency_key"),
    )
    op.create_index("ix_sweeps_tenant_created_id", "sweeps", ["tenant_id", "created_at", "id"])
    op.create_table(
        "sweep_members",
        sa.Column("sweep_id", sa.String(36), sa.ForeignKey("sweeps.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("point", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("sweep_id", "position"),
    )
    op.create_index("ix_sweep_members_job_id", "sweep_members", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_sweep_members_job_id", table_name="sweep_members")
    op.drop_table("sweep_members")
    op.drop_index("ix_sweeps_tenant_created_id", table_name="sweeps")
    op.drop_table("sweeps")
