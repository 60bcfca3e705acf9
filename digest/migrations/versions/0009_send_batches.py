"""send_batches: claiming, leases and outcomes per batch instead of per delivery

A million-recipient send changed a million rows three times; now a batch of up to 1000
deliveries is claimed, leased and marked as one row, and its deliveries change once, together,
when its outcome is known. ``deliveries.batch`` (a claim id) becomes ``batch_id``.
``ix_deliveries_issue_status`` goes: every outcome rewrote it, and per-issue counts find their
rows through the unique (issue_id, subscriber_id) index.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "send_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=2000), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("worker", sa.String(length=300), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_send_batches_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_batches")),
    )
    op.create_index("ix_send_batches_claim", "send_batches", ["issue_id", "status", "id"])
    op.drop_index("ix_deliveries_claim", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_issue_status")
        batch.drop_column("batch")
        batch.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_deliveries_batch_id_send_batches"),
            "send_batches",
            ["batch_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_deliveries_batch_id", ["batch_id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_batch_id")
        batch.drop_constraint(op.f("fk_deliveries_batch_id_send_batches"), type_="foreignkey")
        batch.drop_column("batch_id")
        batch.add_column(sa.Column("batch", sa.String(length=64), nullable=True))
        batch.create_index("ix_deliveries_issue_status", ["issue_id", "status"])
    op.create_index("ix_deliveries_claim", "deliveries", ["issue_id", "status", "segment", "id"])
    op.drop_index("ix_send_batches_claim", table_name="send_batches")
    op.drop_table("send_batches")
