"""erasure keys: the keys of the erased addresses' hashes, wrapped with the secret key

Until now each hash was keyed with a key derived from the secret key itself, so removing the
previous key after a rotation forgot every erasure made before it. The keys are now kept
here, wrapped with the secret key and rewrapped with the new one during a rotation. The table
starts empty: the project adopts the keys its hashes were made with the first time it opens
with its secret key (the migration does not have it).

Revision ID: 8c1e4f2a9d37
Revises: 5b2d7e9a1c40
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c1e4f2a9d37"
down_revision: str | None = "5b2d7e9a1c40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasure_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_keys")),
    )


def downgrade() -> None:
    op.drop_table("erasure_keys")
