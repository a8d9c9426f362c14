"""Webhooks: per-tenant signing secrets and delivery retry bookkeeping.

Adds ``tenants.webhook_secret`` / ``webhook_secret_previous`` / ``webhook_secret_rotated_at``
and ``webhook_deliveries.webhook_id`` / ``next_attempt_at``, a unique (job_id, attempt)
(two senders can never both make attempt n) and an index for the sweeper's due scan.
Batch operations so that SQLite (table copy-and-move) runs it too.

Revision ID: 0002_webhooks
Revises: 0001_initial
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_webhooks"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(128), nullable=True))
        batch.add_column(sa.Column("webhook_secret_previous", sa.String(128), nullable=True))
        batch.add_column(sa.Column("webhook_secret_rotated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("webhook_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_unique_constraint("uq_webhook_deliveries_job_attempt", ["job_id", "attempt"])
    op.create_index("ix_webhook_deliveries_next_attempt_at", "webhook_deliveries", ["next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_next_attempt_at", table_name="webhook_deliveries")
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_constraint("uq_webhook_deliveries_job_attempt", type_="unique")
        batch.drop_column("next_attempt_at")
        batch.drop_column("webhook_id")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("webhook_secret_rotated_at")
        batch.drop_column("webhook_secret_previous")
        batch.drop_column("webhook_secret")
