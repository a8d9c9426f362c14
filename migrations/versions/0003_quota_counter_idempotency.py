"""Submissions without long-held locks: a per-tenant active-jobs counter and claimed
idempotency keys.

Adds ``tenants.active_jobs`` (backfilled with each tenant's queued + running jobs) and
the ``idempotency_keys`` table (backfilled from jobs that carry a key). Both are written
by the new API only; a previous release's workers do not decrement the counter, which
only makes it high, and the API recounts a tenant whose counter is at the limit.

Revision ID: 0003_quota_counter_idempotency
Revises: 0002_webhooks
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_quota_counter_idempotency"
down_revision: str | Sequence[str] | None = "0002_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("active_jobs", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE tenants SET active_jobs = (SELECT count(*) FROM jobs WHERE jobs.tenant_id = tenants.id "
        "AND jobs.state IN ('queued', 'running'))"
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("claim_token", sa.String(36), nullable=False),
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key"),
    )
    op.execute(
        "INSERT INTO idempotency_keys (tenant_id, key, fingerprint, claim_token, job_id, claimed_at) "
        "SELECT tenant_id, idempotency_key, coalesce(request_fingerprint, ''), id, id, created_at "
        "FROM jobs WHERE idempotency_key IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("active_jobs")
