"""issue waves: the local-time waves of a slot's issue, and the cadence in the schedule log

Revision ID: fcea560ed55f
Revises: 8e3f586d0b13
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fcea560ed55f"
down_revision: str | None = "8e3f586d0b13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issue_waves",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("wave_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("zones", sa.Text(), nullable=False),
        sa.Column("readers", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_waves_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", "wave_at", name=op.f("pk_issue_waves")),
    )
    with op.batch_alter_table("schedule_log") as batch:
        batch.add_column(
            sa.Column("cadence", sa.String(length=20), server_default="", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("schedule_log") as batch:
        batch.drop_column("cadence")
    op.drop_table("issue_waves")
