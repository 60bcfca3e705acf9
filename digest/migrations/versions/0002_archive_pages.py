"""the web-archive page cache

Each issue's web-archive page, rendered once after the issue went out and served from here
(``digest.stores.archive``). A cache: the downgrade drops it with no loss.

Revision ID: a1cc07b3db79
Revises: bea472c6e47a
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1cc07b3db79"
down_revision: str | None = "bea472c6e47a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "archive_pages",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("etag", sa.String(length=80), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", "number", name=op.f("pk_archive_pages")),
    )


def downgrade() -> None:
    op.drop_table("archive_pages")
