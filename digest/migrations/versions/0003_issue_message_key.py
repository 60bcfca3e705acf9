"""issues.message_key: a random key in each Message-ID of an issue

Message-IDs were ``<digest.ISSUE.SUBSCRIBER@domain>``: after a database reset (or in a second
database) issue 1 sends the same ids again, and receivers that dedupe on Message-ID drop the
new mail. Issues stored from now on draw a key (``digest.db``'s column default); existing
issues keep NULL, so a resumed send of one re-sends the ids it began with.

Revision ID: faa0a6868547
Revises: a1cc07b3db79
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "faa0a6868547"
down_revision: str | None = "a1cc07b3db79"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("message_key", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("message_key")
