"""The subscriber tables, on the one :data:`metadata` the whole database is described by.

The subscriber list is the lower layer: ``digest`` builds on it and never the other way round,
so the schema's shared pieces (the metadata with its naming convention, the UTC timestamp
column type) are defined here and :mod:`digest.db` puts its own tables on the same metadata.
Foreign keys between the two sides then resolve, and migrations see every table.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    column,
    or_,
    table,
)
from sqlalchemy.types import TypeDecorator

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


topics = table("topics", column("id", Integer), column("slug", String))
"""The topics readers follow, as far as the subscriber list reads them (id and slug). The
table itself is :data:`digest.db.topics`: the digest keeps it in step with its configuration."""

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
    # An IANA zone; NULL: the digest's own. Read when a digest delivers at readers' local time.
    Column("time_zone", String(64)),
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
    # Typed here, not taken from the referenced column: digest.db defines the topics table.
    Column("topic_id", Integer, ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)

reader_cadences = Table(
    "reader_cadences",
    metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("digest", String(64), primary_key=True),
    Column("cadence", String(20), nullable=False),
    Column("watermark", Integer),
    Column("changed_at", UtcDateTime, nullable=False),
)
"""A reader's chosen cadence of one digest (no row: the digest's default cadence).
``watermark``: the last release of that digest the reader is known to have been sent (or
passed over with nothing owed); NULL means "where their cadence's last recorded issue ended",
so the many readers who never switch need no write after a send. A switch writes the
reader's effective watermark here, so they are owed exactly what came after it."""
Index("ix_reader_cadences_digest_cadence", reader_cadences.c.digest, reader_cadences.c.cadence)
