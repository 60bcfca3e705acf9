"""initial schema

The schema of the first release, made by autogenerate from ``digest.db.metadata`` and
reviewed; it replaces the thirteen pre-release revisions 0001-0013. Those ids must never come
back: :func:`digest.db.upgrade` refuses a database stamped with a revision it does not know,
and a reused id would let a pre-release database pass for a released one. Hence alembic's
random ids from here on.

Times are ``sa.DateTime(timezone=True)``, what ``UtcDateTime`` stores, so the revision keeps
its meaning whatever becomes of the application's types.

Revision ID: bea472c6e47a
Revises:
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "bea472c6e47a"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("issue_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("subscriber_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=320), server_default="", nullable=False),
        sa.Column("name", sa.String(length=300), server_default="", nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "subscriber_id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_batch_id", "deliveries", ["batch_id"], unique=False)
    op.create_index(
        "ix_deliveries_own_outcome",
        "deliveries",
        ["batch_id"],
        unique=False,
        sqlite_where=sa.text("status IS NOT NULL"),
        postgresql_where=sa.text("status IS NOT NULL"),
    )
    op.create_table(
        "editors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=300), server_default="", nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_editors")),
        sa.UniqueConstraint("email", name=op.f("uq_editors_email")),
    )
    op.create_table(
        "editor_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("editor", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_editor_sessions")),
    )
    op.create_index("ix_editor_sessions_editor", "editor_sessions", ["editor"], unique=False)
    op.create_table(
        "events",
        sa.Column("sg_event_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sg_event_id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_issue_event", "events", ["issue_id", "event"], unique=False)
    op.create_table(
        "issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approval", sa.String(length=20), server_default="none", nullable=False),
        sa.Column("approval_by", sa.String(length=320), nullable=True),
        sa.Column("approval_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approval_note", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorder", sa.String(length=200), nullable=True),
        sa.Column("recorder_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issues")),
        sa.UniqueConstraint("digest", "number", name="uq_issues_digest_number"),
        sa.UniqueConstraint("digest", "slot", name="uq_issues_digest_slot"),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=2000), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=300), nullable=True),
        sa.Column("image_url", sa.String(length=2000), nullable=True),
        sa.Column("image_alt", sa.Text(), nullable=True),
        sa.Column("image_width", sa.Integer(), nullable=True),
        sa.Column("image_height", sa.Integer(), nullable=True),
        sa.Column("reading_minutes", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posts")),
        sa.UniqueConstraint("uid", name=op.f("uq_posts_uid")),
    )
    op.create_index("ix_posts_published_at", "posts", ["published_at"], unique=False)
    op.create_table(
        "schedule_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_log")),
    )
    op.create_index("ix_schedule_log_digest_at", "schedule_log", ["digest", "at"], unique=False)
    op.create_table(
        "source_states",
        sa.Column("location", sa.String(length=2000), nullable=False),
        sa.Column("etag", sa.String(length=500), nullable=True),
        sa.Column("last_modified", sa.String(length=100), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("location", name=op.f("pk_source_states")),
    )
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=300), server_default="", nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=100), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint("email_key", name=op.f("uq_subscribers_email_key")),
    )
    op.create_index("ix_subscribers_status", "subscribers", ["status"], unique=False)
    op.create_index(
        "ix_subscribers_unsendable",
        "subscribers",
        ["id"],
        unique=False,
        sqlite_where=sa.text("status != 'active' OR paused_until IS NOT NULL"),
        postgresql_where=sa.text("status != 'active' OR paused_until IS NOT NULL"),
    )
    op.create_table(
        "topics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("slug", name=op.f("uq_topics_slug")),
    )
    op.create_table(
        "issue_posts",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("excluded", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_posts_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_issue_posts_post_id_posts")
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"], ["topics.id"], name=op.f("fk_issue_posts_topic_id_topics")
        ),
        sa.PrimaryKeyConstraint("issue_id", "topic_id", "post_id", name=op.f("pk_issue_posts")),
    )
    op.create_table(
        "issue_topics",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.Column("more", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_topics_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"], ["topics.id"], name=op.f("fk_issue_topics_topic_id_topics")
        ),
        sa.PrimaryKeyConstraint("issue_id", "topic_id", name=op.f("pk_issue_topics")),
    )
    op.create_table(
        "post_topics",
        sa.Column("post_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["post_id"], ["posts.id"], name=op.f("fk_post_topics_post_id_posts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_post_topics_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("post_id", "topic_id", name=op.f("pk_post_topics")),
    )
    op.create_table(
        "send_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=2000), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("worker", sa.String(length=300), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("ambiguities", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_send_batches_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_batches")),
    )
    op.create_index(
        "ix_send_batches_claim", "send_batches", ["issue_id", "status", "id"], unique=False
    )
    op.create_table(
        "subscriptions",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_subscriptions_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topics.id"],
            name=op.f("fk_subscriptions_topic_id_topics"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscriber_id", "topic_id", name=op.f("pk_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("subscriptions")
    op.drop_index("ix_send_batches_claim", table_name="send_batches")
    op.drop_table("send_batches")
    op.drop_table("post_topics")
    op.drop_table("issue_topics")
    op.drop_table("issue_posts")
    op.drop_table("topics")
    op.drop_index("ix_subscribers_unsendable", table_name="subscribers")
    op.drop_index("ix_subscribers_status", table_name="subscribers")
    op.drop_table("subscribers")
    op.drop_table("source_states")
    op.drop_index("ix_schedule_log_digest_at", table_name="schedule_log")
    op.drop_table("schedule_log")
    op.drop_index("ix_posts_published_at", table_name="posts")
    op.drop_table("posts")
    op.drop_table("issues")
    op.drop_index("ix_events_issue_event", table_name="events")
    op.drop_table("events")
    op.drop_table("editors")
    op.drop_index("ix_editor_sessions_editor", table_name="editor_sessions")
    op.drop_table("editor_sessions")
    op.drop_index("ix_deliveries_own_outcome", table_name="deliveries")
    op.drop_index("ix_deliveries_batch_id", table_name="deliveries")
    op.drop_table("deliveries")
