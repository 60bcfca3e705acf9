"""issues.editor_note: an editor's short intro to an issue

Revision ID: 5c1e0a9d7b42
Revises: 6d0c2f9b71e4
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1e0a9d7b42"
down_revision: str | None = "6d0c2f9b71e4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("editor_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("editor_note")
