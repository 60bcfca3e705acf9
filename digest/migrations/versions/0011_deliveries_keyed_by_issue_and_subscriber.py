"""deliveries are keyed by (issue, subscriber), without a surrogate id

A delivery is unique per issue and subscriber, which the table enforced with a unique
constraint beside an ``id`` nobody refers to. Writing a million deliveries, PostgreSQL spent
about half its time on that id: a sequence value per row and a third B-tree to maintain. The
(issue, subscriber) pair becomes the primary key and the id goes.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAIR = ["issue_id", "subscriber_id"]


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_issue_subscriber", type_="unique")
        batch.drop_constraint(op.f("pk_deliveries"), type_="primary")
        batch.drop_column("id")
        batch.create_primary_key(op.f("pk_deliveries"), _PAIR)


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint(op.f("pk_deliveries"), type_="primary")
        batch.create_unique_constraint("uq_deliveries_issue_subscriber", _PAIR)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE deliveries ADD COLUMN id SERIAL, "
            "ADD CONSTRAINT pk_deliveries PRIMARY KEY (id)"
        )
        return
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("id", sa.Integer(), nullable=True))
    op.execute("UPDATE deliveries SET id = rowid")
    with op.batch_alter_table("deliveries", recreate="always") as batch:
        batch.alter_column("id", existing_type=sa.Integer(), nullable=False)
        batch.create_primary_key(op.f("pk_deliveries"), ["id"])
