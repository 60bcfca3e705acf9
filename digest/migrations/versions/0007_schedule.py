"""PLACEHOLDER for the sched branch's 0007: issue slot and approval columns, schedule_log

Only the names the editor app relies on (see the contract in the editor branch's report);
replaced by the real migration when branch ``sched`` is merged.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("slot", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("approval", sa.String(length=20), server_default="none", nullable=False)
        )
        batch.add_column(sa.Column("approval_by", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("approval_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("approval_note", sa.Text(), nullable=True))
    op.create_table(
        "schedule_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_log")),
    )


def downgrade() -> None:
    op.drop_table("schedule_log")
    with op.batch_alter_table("issues") as batch:
        for column in ("approval_note", "approval_at", "approval_by", "approval", "slot"):
            batch.drop_column(column)
