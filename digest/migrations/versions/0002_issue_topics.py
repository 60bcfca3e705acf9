"""issue_topics: per issue and topic, the new posts that did not fit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issue_topics",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("more", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_topics_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"], ["topics.id"], name=op.f("fk_issue_topics_topic_id_topics")
        ),
        sa.PrimaryKeyConstraint("issue_id", "topic_id", name=op.f("pk_issue_topics")),
    )


def downgrade() -> None:
    op.drop_table("issue_topics")
