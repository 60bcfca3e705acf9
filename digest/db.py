"""Engine, tables and migrations.

Tables are SQLAlchemy Core: the pipeline moves rows in bulk (inserts of a whole batch, streamed
reads of subscribers), which Core does without an identity map. Alembic migrations live in
``digest/migrations`` and are applied by :func:`upgrade`, which every command that needs the
database calls first.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    false,
    or_,
)
from sqlalchemy.types import TypeDecorator

from digest.errors import DigestError

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[Any]):
    """Stores aware datetimes as UTC and hands them back aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware UTC datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


topics = Table(
    "topics",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
)

posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uid", String(2000), nullable=False, unique=True),
    Column("url", String(2000), nullable=False),
    Column("title", Text, nullable=False),
    Column("excerpt", Text, nullable=False),
    Column("author", String(300)),
    Column("image_url", String(2000)),
    Column("image_alt", Text),
    Column("image_width", Integer),
    Column("image_height", Integer),
    Column("reading_minutes", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source", String(500), nullable=False),
    Column("published_at", UtcDateTime, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
Index("ix_posts_published_at", posts.c.published_at)

post_topics = Table(
    "post_topics",
    metadata,
    Column("post_id", ForeignKey("posts.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)

source_states = Table(
    "source_states",
    metadata,
    Column("location", String(2000), primary_key=True),
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("checked_at", UtcDateTime),
    Column("last_error", Text),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False),
    Column("email_key", String(320), nullable=False, unique=True),
    Column("name", String(300), nullable=False, server_default=""),
    Column("status", String(20), nullable=False),
    Column("source", String(100), nullable=False, server_default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
    Column("confirmed_at", UtcDateTime),
    Column("unsubscribed_at", UtcDateTime),
    Column("paused_until", UtcDateTime),
)
Index("ix_subscribers_status", subscribers.c.status)
UNSENDABLE = or_(subscribers.c.status != "active", subscribers.c.paused_until.is_not(None))
"""Subscribers who may not get email now, or soon will again: the few a send checks its
recipients against, through the small partial index below, instead of reading every one."""
Index(
    "ix_subscribers_unsendable",
    subscribers.c.id,
    sqlite_where=UNSENDABLE,
    postgresql_where=UNSENDABLE,
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("cutoff", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("slot", UtcDateTime),
    Column("approval", String(20), nullable=False, server_default="none"),
    Column("approval_by", String(320)),
    Column("approval_at", UtcDateTime),
    Column("approval_note", Text),
    Column("recorded_at", UtcDateTime),
    Column("recorder", String(200)),
    Column("recorder_until", UtcDateTime),
    UniqueConstraint("digest", "number", name="uq_issues_digest_number"),
    UniqueConstraint("digest", "slot", name="uq_issues_digest_slot"),
)
"""``slot``: the scheduled instant the issue was made for (NULL when made by hand); one issue
per (digest, slot). ``approval``: the editor gate (see :mod:`digest.repository`).
``recorded_at``: when its deliveries were all recorded (recording goes a group of segments at
a time, see :func:`digest.send.recording.record`); ``recorder`` records it, under a lease until
``recorder_until``."""

issue_posts = Table(
    "issue_posts",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id"), primary_key=True),
    Column("post_id", ForeignKey("posts.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("excluded", Boolean, nullable=False, server_default=false()),
)

issue_topics = Table(
    "issue_topics",
    metadata,
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id"), primary_key=True),
    Column("more", Integer, nullable=False, server_default="0"),
)

send_batches = Table(
    "send_batches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue_id", ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("segment", String(2000), nullable=False),
    Column("size", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("worker", String(300)),
    Column("lease_until", UtcDateTime),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("ambiguities", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)
Index("ix_send_batches_claim", send_batches.c.issue_id, send_batches.c.status, send_batches.c.id)

deliveries = Table(
    "deliveries",
    metadata,
    # Keyed by what makes a delivery unique, each reader once per issue, with no surrogate id
    # (its sequence and index were a third of the cost of recording, migration 0011). No
    # foreign keys: the ledger alone writes deliveries, from the issue, batch and subscriber
    # rows it reads in the same transaction, and checking a million keys per send took
    # PostgreSQL four times as long as writing the rows (see migration 0010).
    Column("issue_id", Integer, primary_key=True, autoincrement=False),
    Column("subscriber_id", Integer, primary_key=True, autoincrement=False),
    # NULL while the delivery's state is its batch's (see digest.send.ledger).
    Column("status", String(20)),
    Column("batch_id", Integer),
    # The address and name the issue was recorded for: sending reads them here, in batch
    # order, instead of looking every recipient up among the subscribers (migration 0013).
    Column("email", String(320), nullable=False, server_default=""),
    Column("name", String(300), nullable=False, server_default=""),
    Column("message_id", String(300)),
    Column("error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("changed_at", UtcDateTime, nullable=False),
)
Index("ix_deliveries_batch_id", deliveries.c.batch_id)
Index(
    "ix_deliveries_own_outcome",
    deliveries.c.batch_id,
    sqlite_where=deliveries.c.status.is_not(None),
    postgresql_where=deliveries.c.status.is_not(None),
)


events = Table(
    "events",
    metadata,
    Column("sg_event_id", String(200), primary_key=True),
    Column("event", String(40), nullable=False),
    Column("email", String(320), nullable=False),
    Column("issue_id", Integer),
    Column("subscriber_id", Integer),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
)
Index("ix_events_issue_event", events.c.issue_id, events.c.event)


schedule_log = Table(
    "schedule_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("slot", UtcDateTime),
    Column("kind", String(20), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("at", UtcDateTime, nullable=False),
)
"""What the scheduler did with each slot (ran, missed, skipped, notified, nothing, …), so a
missed or skipped slot is shown to people, not only written to a log file."""
Index("ix_schedule_log_digest_at", schedule_log.c.digest, schedule_log.c.at)


editors = Table(
    "editors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(300), nullable=False, server_default=""),
    Column("password_hash", String(300), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_login_at", UtcDateTime),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # 64 MiB of pages (the default is 2 MiB): recording a large issue writes a million rows.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = Path(url[len("sqlite:///") :]).parent
        if not folder.is_dir():
            raise DigestError(f"folder {folder} does not exist", where="database_url")
    try:
        engine = create_engine(url, future=True)
    except Exception as err:  # SQLAlchemy raises several types for a malformed URL
        raise DigestError(f"cannot use {url!r}: {err}", where="database_url") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; cheap when it is already there."""
    command.upgrade(alembic_config(engine), revision)
