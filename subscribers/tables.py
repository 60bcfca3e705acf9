"""The subscriber tables, on the one :data:`metadata` the whole database is described by.

The subscriber list is the lower layer: ``digest`` builds on it and never the other way round,
so the schema's shared pieces (the metadata with its naming convention, the UTC timestamp
column type) are defined here and :mod:`digest.db` puts its own tables on the same metadata.
Foreign keys between the two sides then resolve, and migrations see every table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    any_,
    bindparam,
    cast,
    column,
    func,
    insert,
    or_,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeDecorator, TypeEngine

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

erasure_keys = Table(
    "erasure_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("wrapped", String(400), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
"""The keys the hashes of erased addresses are made with, each wrapped (encrypted) with the
project's secret key (:class:`subscribers.erasure.KeyWrap`): kept apart from the secret key,
they outlive its rotation; wrapped, a copy of the database alone says nothing of who was
erased."""


def among(conn: Connection, key: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """``key IN values``; on PostgreSQL ``key = ANY`` of one array parameter. An import's
    lookups name hundreds of values at a time: as a list of placeholders the
    statement's text changes with their number and psycopg parses all of it again on every
    execution (with the inserts below, a third of a PostgreSQL import's time)."""
    listed = list(values)
    if conn.dialect.name != "postgresql":
        return key.in_(listed)
    return key == any_(_array(key.type, listed))


def _array(item: TypeEngine[Any], values: list[Any]) -> ColumnElement[Any]:
    """One parameter holding ``values``, cast to an array of ``item``'s type, but without a
    length: PostgreSQL cuts a value cast to VARCHAR(n) to n characters without a word, where
    a value too long for its column is an error (and a key cut short could match another)."""
    if isinstance(item, String):
        item = String()
    array = ARRAY(item)
    return cast(bindparam(None, values, type_=array), array)


def insert_rows(
    conn: Connection, target: Table, rows: Sequence[dict[str, Any]], *returning: Column[Any]
) -> Sequence[Row[*tuple[Any, ...]]]:
    """Insert ``rows`` (all with the same keys); the ``returning`` columns of each row
    inserted, in no particular order. On PostgreSQL the rows go in as one array per column,
    unnested (``INSERT … SELECT FROM unnest(…)``): one short statement whatever the number of
    rows, where SQLAlchemy writes a VALUES list with a placeholder per cell for psycopg to
    parse on every execution."""
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        if not returning:
            conn.execute(insert(target), rows)
            return []
        return conn.execute(insert(target).returning(*returning), rows).all()
    names = list(rows[0])
    columns = [target.c[name] for name in names]
    arrays = [_array(c.type, [row[c.name] for row in rows]) for c in columns]
    unnested = func.unnest(*arrays).table_valued(*names).render_derived()
    statement = insert(target).from_select(names, select(*(unnested.c[n] for n in names)))
    if not returning:
        conn.execute(statement)
        return []
    return conn.execute(statement.returning(*returning)).all()
