"""Blob store: datasets and artifacts may live outside Postgres; chunked uploads.

``datasets`` and ``artifacts`` get ``blob_key`` (the bytes are in the blob store,
``store.blobs``), ``content`` becomes nullable and ``size_bytes`` 64-bit. New tables
``uploads`` and ``upload_parts`` hold resumable chunked uploads. Existing rows keep their
bytes in ``content`` and are read as before.

Revision ID: 0005_blob_store
Revises: 0004_sweeps (rechained at the merge of main, which brought 0004_sweeps)
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_blob_store"
down_revision: str | Sequence[str] | None = "0004_sweeps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BLOB = sa.LargeBinary().with_variant(sa.dialects.postgresql.BYTEA(), "postgresql")


def upgrade() -> None:
    for table in ("datasets", "artifacts"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("size_bytes", type_=sa.BigInteger(), existing_type=sa.Integer(),
                               existing_nullable=False)
            batch.alter_column("content", existing_type=_BLOB, nullable=True)
            batch.add_column(sa.Column("blob_key", sa.String(512), nullable=True))
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(36), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("filename", sa.String(200), nullable=True),
        sa.Column("content_type", sa.String(100), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("part_bytes", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_uploads_tenant_created", "uploads", ["tenant_id", "created_at"])
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(36), sa.ForeignKey("uploads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "part_number"),
    )


def downgrade() -> None:
    op.drop_table("upload_parts")
    op.drop_index("ix_uploads_tenant_created", table_name="uploads")
    op.drop_table("uploads")
    # Rows whose bytes live in the blob store cannot go back into a NOT NULL column.
    op.execute("DELETE FROM artifacts WHERE content IS NULL")
    for table in ("datasets", "artifacts"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("blob_key")
            batch.alter_column("content", existing_type=_BLOB, nullable=False)
            batch.alter_column("size_bytes", type_=sa.Integer(), existing_type=sa.BigInteger(),
                               existing_nullable=False)
