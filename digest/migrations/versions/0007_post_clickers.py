"""event_post_clicks.readers and event_post_firsts: the readers who clicked each post

``event_post_firsts`` remembers who clicked which post of a recent issue, as ``event_firsts``
does for the issue, so ``event_post_clicks.readers`` counts each reader once per post.

The clicks still kept as raw events are counted in once, so an upgraded database shows the
readers of its recent issues' posts (the clicks already pruned cannot be told apart).

Revision ID: 8e3f586d0b13
Revises: 3e7b91c4d2a8
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e3f586d0b13"
down_revision: str | None = "3e7b91c4d2a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event_post_clicks") as batch:
        batch.add_column(sa.Column("readers", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "event_post_firsts",
        sa.Column("issue_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("post_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint(
            "issue_id", "post_id", "recipient", name=op.f("pk_event_post_firsts")
        ),
    )
    op.execute(
        "INSERT INTO event_post_firsts (issue_id, post_id, recipient) "
        "SELECT DISTINCT issue_id, post_id, lower(email) FROM events "
        "WHERE issue_id IS NOT NULL AND post_id IS NOT NULL AND event = 'click' "
        "AND issue_id IN (SELECT issue_id FROM event_firsts)"
    )
    op.execute(
        "UPDATE event_post_clicks SET readers = (SELECT count(*) FROM event_post_firsts f "
        "WHERE f.issue_id = event_post_clicks.issue_id "
        "AND f.post_id = event_post_clicks.post_id)"
    )


def downgrade() -> None:
    op.drop_table("event_post_firsts")
    with op.batch_alter_table("event_post_clicks") as batch:
        batch.drop_column("readers")
