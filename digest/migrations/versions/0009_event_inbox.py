"""event inbox: verified webhook batches staged before they are applied

A batch is appended here in one durable commit and answered; a drain applies many staged
batches at once and deletes them. On SQLite the live inbox is a file of its own beside the
database; the table is made here too, so both databases have the same schema.

Revision ID: 5b2d7e9a1c40
Revises: fcea560ed55f
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b2d7e9a1c40"
down_revision: str | None = "fcea560ed55f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("rows", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_inbox")),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("event_inbox")
