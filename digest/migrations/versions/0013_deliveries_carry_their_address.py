"""deliveries carry their address; the subscribers who may not get email are indexed apart

Sending read each batch's thousand recipients from the subscribers table, one lookup by id
each: on PostgreSQL about 5 µs of the database's time per recipient, on SQLite the largest
part of reading a batch. Recording already reads each subscriber, so a delivery now keeps
the address and name the issue was recorded for, and sending checks its recipients only
against a partial index of the subscribers who may not get email now (not active, or with a
pause): a small index, where a recipient who may is a miss.

Deliveries of batches still to send (pending, submitting or ambiguous) get their
subscriber's current address and name; finished ones keep the defaults, as nothing reads
them again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_subscribers = sa.table(
    "subscribers",
    sa.column("id", sa.Integer),
    sa.column("email", sa.String),
    sa.column("name", sa.String),
    sa.column("status", sa.String),
    sa.column("paused_until", sa.DateTime(timezone=True)),
)
_deliveries = sa.table(
    "deliveries",
    sa.column("subscriber_id", sa.Integer),
    sa.column("batch_id", sa.Integer),
    sa.column("email", sa.String),
    sa.column("name", sa.String),
)
_batches = sa.table("send_batches", sa.column("id", sa.Integer), sa.column("status", sa.String))
_UNSENDABLE = sa.or_(_subscribers.c.status != "active", _subscribers.c.paused_until.is_not(None))


def upgrade() -> None:
    op.add_column(
        "deliveries", sa.Column("email", sa.String(320), nullable=False, server_default="")
    )
    op.add_column(
        "deliveries", sa.Column("name", sa.String(300), nullable=False, server_default="")
    )
    of_subscriber = _subscribers.c.id == _deliveries.c.subscriber_id
    still_to_send = sa.select(_batches.c.id).where(
        _batches.c.status.in_(("pending", "submitting", "ambiguous"))
    )
    op.execute(
        _deliveries.update()
        .where(_deliveries.c.batch_id.in_(still_to_send))
        .values(
            email=sa.select(_subscribers.c.email).where(of_subscriber).scalar_subquery(),
            name=sa.select(_subscribers.c.name).where(of_subscriber).scalar_subquery(),
        )
    )
    op.create_index(
        "ix_subscribers_unsendable",
        "subscribers",
        ["id"],
        sqlite_where=_UNSENDABLE,
        postgresql_where=_UNSENDABLE,
    )


def downgrade() -> None:
    op.drop_index("ix_subscribers_unsendable", "subscribers")
    # Dropped in place (SQLite 3.35 and later), as 0012 does.
    op.drop_column("deliveries", "name")
    op.drop_column("deliveries", "email")
