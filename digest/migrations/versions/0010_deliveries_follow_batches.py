"""deliveries follow their batch: a delivery row is written once, at recording, unchecked

Every outcome rewrote the thousand delivery rows of its batch, and through the unique
(issue, subscriber) index each commit touched a thousand pages: most of a send's time. Now a
delivery's state is its batch's (``deliveries.status`` is NULL) unless it has an outcome of
its own (failed, counted through a small partial index), and ambiguities are counted per
batch. ``deliveries.segment`` goes: the batch
has it.

Its foreign keys go too. Only the ledger writes deliveries, from issue, batch and subscriber
rows it reads in the same transaction (and none of those rows is ever deleted); checking the
keys of a million rows took PostgreSQL 21 s of the 27 s it spent writing them.

Deliveries recorded before send_batches existed (no batch) keep their own status; their
ambiguity counts are dropped with the column.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_batches = sa.table(
    "send_batches",
    sa.column("id", sa.Integer),
    sa.column("segment", sa.String),
    sa.column("status", sa.String),
    sa.column("ambiguities", sa.Integer),
)
_deliveries = sa.table(
    "deliveries",
    sa.column("batch_id", sa.Integer),
    sa.column("segment", sa.String),
    sa.column("status", sa.String),
    sa.column("ambiguities", sa.Integer),
)
_of_batch = _deliveries.c.batch_id == _batches.c.id
_FOREIGN_KEYS = {
    "fk_deliveries_issue_id_issues": ("issue_id", "issues", True),
    "fk_deliveries_subscriber_id_subscribers": ("subscriber_id", "subscribers", False),
    "fk_deliveries_batch_id_send_batches": ("batch_id", "send_batches", True),
}


def upgrade() -> None:
    # Added in place: recreating send_batches (a batch operation) would delete every delivery
    # through their ON DELETE CASCADE.
    op.add_column(
        "send_batches",
        sa.Column("ambiguities", sa.Integer(), nullable=False, server_default="0"),
    )
    most = (
        sa.select(sa.func.coalesce(sa.func.max(_deliveries.c.ambiguities), 0))
        .where(_of_batch)
        .scalar_subquery()
    )
    op.execute(sa.update(_batches).values(ambiguities=most))
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("status", existing_type=sa.String(length=20), nullable=True)
        for name in _FOREIGN_KEYS:
            batch.drop_constraint(op.f(name), type_="foreignkey")
    op.execute(
        sa.update(_deliveries)
        .where(_deliveries.c.batch_id.is_not(None), _deliveries.c.status != "failed")
        .values(status=None)
    )
    op.drop_column("deliveries", "segment")
    op.drop_column("deliveries", "ambiguities")
    own_outcome = sa.text("status IS NOT NULL")
    op.create_index(
        "ix_deliveries_own_outcome",
        "deliveries",
        ["batch_id"],
        sqlite_where=own_outcome,
        postgresql_where=own_outcome,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_own_outcome", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("segment", sa.String(length=2000), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("ambiguities", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        sa.update(_deliveries)
        .where(_deliveries.c.batch_id.is_not(None))
        .values(segment=sa.select(_batches.c.segment).where(_of_batch).scalar_subquery())
    )
    op.execute(
        sa.update(_deliveries)
        .where(_deliveries.c.status.is_(None))
        .values(ambiguities=sa.select(_batches.c.ambiguities).where(_of_batch).scalar_subquery())
    )
    # 0009 kept deliveries of a batch in flight pending.
    state = sa.case((_batches.c.status == "submitting", "pending"), else_=_batches.c.status)
    op.execute(
        sa.update(_deliveries)
        .where(_deliveries.c.status.is_(None))
        .values(status=sa.select(state).where(_of_batch).scalar_subquery())
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("status", existing_type=sa.String(length=20), nullable=False)
        for name, (column, table, cascade) in _FOREIGN_KEYS.items():
            batch.create_foreign_key(
                op.f(name), table, [column], ["id"], ondelete="CASCADE" if cascade else None
            )
    op.drop_column("send_batches", "ambiguities")
