"""events: rollups kept for good, raw events kept for keep_days

The raw events get the click's ``url`` and matched ``post_id``, and an index on
``received_at`` for pruning; their ``(issue_id, event)`` index goes (figures are read from
the rollups now, and every index costs the webhook's bulk insert). New: ``event_counts``,
``event_firsts`` and ``event_post_clicks``.

Existing events are counted into ``event_counts`` once, so an upgraded database keeps its
figures; their unique opens and clicks cannot be told (the addresses are there, but not
which were the first), so they are counted from the raw events too.

Revision ID: 6d0c2f9b71e4
Revises: faa0a6868547
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6d0c2f9b71e4"
down_revision: str | None = "faa0a6868547"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("post_id", sa.Integer(), nullable=True))
        batch.drop_index("ix_events_issue_event")
        batch.create_index("ix_events_received_at", ["received_at"], unique=False)
    op.create_table(
        "event_counts",
        sa.Column("issue_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "kind", name=op.f("pk_event_counts")),
    )
    op.create_table(
        "event_firsts",
        sa.Column("issue_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "kind", "recipient", name=op.f("pk_event_firsts")),
    )
    op.create_table(
        "event_post_clicks",
        sa.Column("issue_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("post_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "post_id", name=op.f("pk_event_post_clicks")),
    )
    op.execute(
        "INSERT INTO event_firsts (issue_id, kind, recipient) "
        "SELECT DISTINCT issue_id, event, lower(email) FROM events "
        "WHERE issue_id IS NOT NULL AND event IN ('open', 'click')"
    )
    op.execute(
        "INSERT INTO event_counts (issue_id, kind, n) "
        "SELECT issue_id, event, count(*) FROM events WHERE issue_id IS NOT NULL "
        "GROUP BY issue_id, event"
    )
    op.execute(
        "INSERT INTO event_counts (issue_id, kind, n) "
        "SELECT issue_id, 'unique_' || kind, count(*) FROM event_firsts "
        "GROUP BY issue_id, kind"
    )


def downgrade() -> None:
    op.drop_table("event_post_clicks")
    op.drop_table("event_firsts")
    op.drop_table("event_counts")
    with op.batch_alter_table("events") as batch:
        batch.drop_index("ix_events_received_at")
        batch.create_index("ix_events_issue_event", ["issue_id", "event"], unique=False)
        batch.drop_column("post_id")
        batch.drop_column("url")
