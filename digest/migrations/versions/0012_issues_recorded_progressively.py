"""issues are recorded in steps: who records an issue, until when, and when it was done

Recording a large issue (a million deliveries) took a third of the send, with nothing sent
meanwhile. It now commits one group of segments at a time, and sending starts with the first
group. An issue can therefore be partly recorded: ``recorded_at`` says when recording
finished, ``recorder`` and ``recorder_until`` who records it and until when their lease runs,
so that a worker can finish the recording of one that died.

Issues already sending or sent were recorded in one transaction: they are marked recorded.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_issues = sa.table(
    "issues",
    sa.column("status", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("recorded_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.add_column("issues", sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("issues", sa.Column("recorder", sa.String(200), nullable=True))
    op.add_column("issues", sa.Column("recorder_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        _issues.update()
        .where(_issues.c.status.in_(("sending", "sent")))
        .values(recorded_at=_issues.c.created_at)
    )


def downgrade() -> None:
    # Dropped in place (SQLite 3.35 and later): recreating issues, as a batch operation does,
    # would delete every batch and delivery through their ON DELETE CASCADE.
    for name in ("recorder_until", "recorder", "recorded_at"):
        op.drop_column("issues", name)
