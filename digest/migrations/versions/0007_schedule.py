"""issues: slot and approval; schedule_log: what the scheduler did with each slot

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

``slot`` is the scheduled instant (UTC) an issue was made for, NULL for issues made by hand.
Unique (digest, slot) makes a slot's issue exist once however often the slot runs (NULLs are
distinct on SQLite and PostgreSQL, so hand-made issues are not limited). ``approval`` is the
editor gate: none, pending, approved, held, skipped.
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
        batch.create_unique_constraint("uq_issues_digest_slot", ["digest", "slot"])
    op.create_table(
        "schedule_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_log")),
    )
    op.create_index("ix_schedule_log_digest_at", "schedule_log", ["digest", "at"])


def downgrade() -> None:
    op.drop_index("ix_schedule_log_digest_at", table_name="schedule_log")
    op.drop_table("schedule_log")
    with op.batch_alter_table("issues") as batch:
        batch.drop_constraint("uq_issues_digest_slot", type_="unique")
        batch.drop_column("approval_note")
        batch.drop_column("approval_at")
        batch.drop_column("approval_by")
        batch.drop_column("approval")
        batch.drop_column("slot")
