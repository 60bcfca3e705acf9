"""cadences: each reader's cadence and time zone, post releases, issues per cadence

Revision ID: 3e7b91c4d2a8
Revises: 5c1e0a9d7b42
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3e7b91c4d2a8"
down_revision: str | None = "5c1e0a9d7b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("issues") as batch:
        batch.add_column(
            sa.Column("cadence", sa.String(length=20), server_default="", nullable=False)
        )
        batch.add_column(sa.Column("release_from", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("release_to", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("release_base", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("per_topic", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("takes_default", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch.drop_constraint("uq_issues_digest_slot", type_="unique")
        batch.create_unique_constraint(
            "uq_issues_digest_cadence_slot", ["digest", "cadence", "slot"]
        )
    op.create_table(
        "post_releases",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("release", sa.Integer(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"],
            ["posts.id"],
            name=op.f("fk_post_releases_post_id_posts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest", "post_id", name=op.f("pk_post_releases")),
        sa.UniqueConstraint("digest", "release", name="uq_post_releases_digest_release"),
    )
    op.create_table(
        "reader_cadences",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("cadence", sa.String(length=20), nullable=False),
        sa.Column("watermark", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_reader_cadences_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "digest", name=op.f("pk_reader_cadences")),
    )
    op.create_index(
        "ix_reader_cadences_digest_cadence", "reader_cadences", ["digest", "cadence"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reader_cadences_digest_cadence", table_name="reader_cadences")
    op.drop_table("reader_cadences")
    op.drop_table("post_releases")
    with op.batch_alter_table("issues") as batch:
        batch.drop_constraint("uq_issues_digest_cadence_slot", type_="unique")
        batch.create_unique_constraint("uq_issues_digest_slot", ["digest", "slot"])
        batch.drop_column("takes_default")
        batch.drop_column("per_topic")
        batch.drop_column("release_base")
        batch.drop_column("release_to")
        batch.drop_column("release_from")
        batch.drop_column("cadence")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("time_zone")
