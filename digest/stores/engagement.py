"""The SQL of what readers did with the issues: the raw Event Webhook events and the rollups
kept from them (events per issue and kind, unique opens and clicks, clicks per post).

Written for the webhook's bulk path: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` on both
databases (a drain's staged events in one statement over their JSON on SQLite, a ``COPY``
first on PostgreSQL, a multi-row statement per chunk for events applied directly), so the
database's unique key decides which events are new (a replay, or two deliveries of one batch
at once, are counted once), and the rollups are added to from the new rows only. The inbox
of staged batches is here too. Rows go in key order, so two transactions upserting the
same rollup rows lock them in the same order and cannot deadlock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, select

from digest import db
from subscribers import tables as subscriber_tables

EventRow = tuple[str, str, str, int | None, int | None, int, Any, str | None, int | None]
"""sg_event_id, event, email, issue_id, subscriber_id, occurred_at (Unix seconds: the database
makes the timestamp), received_at (as the driver takes it, see :func:`time_binder`), url,
post_id: the raw event's columns in order."""

EVENT_COLUMNS = (
    "sg_event_id",
    "event",
    "email",
    "issue_id",
    "subscriber_id",
    "occurred_at",
    "received_at",
    "url",
    "post_id",
)
CHUNK_PARAMETERS = 30_000
"""Parameters per statement: under SQLite's 32,766 and PostgreSQL's 65,535."""


def time_binder(conn: Connection) -> Callable[[datetime], Any]:
    """A UTC datetime as this connection's driver takes it for a timestamp column (SQLite's
    text form, a datetime for PostgreSQL): the bulk statements bypass SQLAlchemy's types."""
    column_type = db.events.c.occurred_at.type
    processor = column_type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    if processor is None:
        return lambda value: value
    return lambda value: processor(value.astimezone(UTC))


def _epoch(conn: Connection) -> str:
    """SQLite: SQL making a timestamp of Unix seconds, in the text SQLAlchemy stores."""
    return "strftime('%Y-%m-%d %H:%M:%f', ?, 'unixepoch') || '000'"


def _placeholder(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _rows_sql(conn: Connection, columns: int, rows: int, marks: Sequence[str] = ()) -> str:
    one = "(" + ", ".join(marks or [_placeholder(conn)] * columns) + ")"
    return ", ".join([one] * rows)


def _chunks(rows: Sequence[tuple[Any, ...]], columns: int) -> Iterable[Sequence[tuple[Any, ...]]]:
    size = max(1, CHUNK_PARAMETERS // columns)
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _statement(
    conn: Connection, head: str, tail: str, columns: int, rows: int, marks: Sequence[str] = ()
) -> str:
    """``head VALUES (?, …), … tail``: only placeholders are joined into the SQL, every value
    is a parameter."""
    return f"{head} VALUES {_rows_sql(conn, columns, rows, marks)} {tail}"


def _insert_returning(
    conn: Connection,
    head: str,
    tail: str,
    rows: Sequence[tuple[Any, ...]],
    columns: int,
    marks: Sequence[str] = (),
) -> list[tuple[Any, ...]]:
    """``head VALUES (…), (…) tail`` for each chunk of ``rows``; the rows the database
    returns. On the driver's own cursor, inside the connection's transaction: SQLAlchemy's
    result rows cost more than the insert at thousands of rows a request."""
    out: list[tuple[Any, ...]] = []
    cursor = conn.connection.cursor()
    try:
        for chunk in _chunks(rows, columns):
            cursor.execute(
                _statement(conn, head, tail, columns, len(chunk), marks),
                list(chain.from_iterable(chunk)),
            )
            out.extend(cursor.fetchall())
    finally:
        cursor.close()
    return out


def _upsert(
    conn: Connection, head: str, tail: str, rows: Sequence[tuple[Any, ...]], columns: int = 3
) -> None:
    for chunk in _chunks(rows, columns):
        conn.exec_driver_sql(
            _statement(conn, head, tail, columns, len(chunk)), tuple(chain.from_iterable(chunk))
        )


INCOMING = {
    "events": 'sg_event_id VARCHAR(200) COLLATE "C", event VARCHAR(40), email VARCHAR(320), '
    "issue_id INTEGER, subscriber_id INTEGER, occurred_at BIGINT, "
    "received_at TIMESTAMP WITH TIME ZONE, url TEXT, post_id INTEGER",
    "event_firsts": 'issue_id INTEGER, kind VARCHAR(10) COLLATE "C", '
    'recipient VARCHAR(320) COLLATE "C"',
    "event_post_firsts": 'issue_id INTEGER, post_id INTEGER, recipient VARCHAR(320) COLLATE "C"',
}
"""PostgreSQL: the temporary tables a batch is copied into (COPY, the fastest way in) before
one ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`` moves the new rows over. The
driver has to parse a multi-row VALUES statement's placeholders in Python, which cost more than
the insert. The keys sort bytewise (``COLLATE "C"``): any one order keeps two batches from
locking the same keys in opposite orders, and the locale's costs twice as much to sort by."""


def _copy_returning(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    selected: str,
    tail: str,
    rows: Sequence[tuple[Any, ...]],
) -> list[tuple[Any, ...]]:
    incoming = f"incoming_{table}"
    names = ", ".join(columns)
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {incoming} ({INCOMING[table]}) "
            "ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY {incoming} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {selected} FROM {incoming} "  # noqa: S608
            f"ORDER BY {names} {tail}"
        )
        out = [tuple(row) for row in cursor.fetchall()]
        cursor.execute(f"TRUNCATE {incoming}")  # a second batch in this transaction
    return out


def insert_new_events(conn: Connection, rows: Sequence[EventRow]) -> set[str]:
    """Insert the events whose ``sg_event_id`` is not stored yet; the ids of those inserted
    (one ``sg_event_id`` per row expected: the caller drops repeats within a batch)."""
    tail = "ON CONFLICT (sg_event_id) DO NOTHING RETURNING sg_event_id"
    if conn.dialect.name == "postgresql":
        selected = ", ".join(
            "to_timestamp(occurred_at)" if c == "occurred_at" else c for c in EVENT_COLUMNS
        )
        returned = _copy_returning(conn, "events", EVENT_COLUMNS, selected, tail, rows)
    else:
        returned = _insert_returning(
            conn,
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})",
            tail,
            sorted(rows, key=lambda row: row[0]),
            len(EVENT_COLUMNS),
            ["?"] * 5 + [_epoch(conn)] + ["?"] * 3,
        )
    return {row[0] for row in returned}


def insert_staged(
    conn: Connection,
    batches: Sequence[StagedBatch],
    link_of: Callable[[int, str], int | None] | None = None,
) -> list[EventRow]:
    """Insert the staged batches' events whose ``sg_event_id`` is not stored yet, each once
    (the first staged), in one :func:`insert_new_events`, each batch's ``received_at`` bound
    to its rows and each click matched to its post by ``link_of``; those new rows, in the
    order they were staged (what suppression goes by)."""
    stamp = time_binder(conn)
    rows: dict[str, EventRow] = {}
    for batch in batches:
        received = stamp(batch.received_at)
        for event_id, kind, email, issue, reader, at, _, url, _ in orjson.loads(batch.rows):
            if event_id not in rows:
                post = link_of(issue, url) if link_of and url and issue is not None else None
                rows[event_id] = (event_id, kind, email, issue, reader, at, received, url, post)
    inserted = insert_new_events(conn, list(rows.values()))
    return [row for row in rows.values() if row[0] in inserted]


def add_counts(conn: Connection, counts: Counter[tuple[int, str]]) -> None:
    """Add to the per-(issue, kind) rollup."""
    rows = sorted((issue, kind, n) for (issue, kind), n in counts.items() if n)
    _upsert(
        conn,
        "INSERT INTO event_counts (issue_id, kind, n)",
        "ON CONFLICT (issue_id, kind) DO UPDATE SET n = event_counts.n + excluded.n",
        rows,
    )


def add_firsts(
    conn: Connection, firsts: Iterable[tuple[int, str, str]]
) -> Counter[tuple[int, str]]:
    """Remember (issue, kind, recipient) for those not remembered yet; how many were new per
    (issue, kind)."""
    returned = _add_new(conn, "event_firsts", ("issue_id", "kind", "recipient"), firsts)
    return Counter((int(issue), str(kind)) for issue, kind in returned)


def add_post_firsts(
    conn: Connection, firsts: Iterable[tuple[int, int, str]]
) -> Counter[tuple[int, int]]:
    """Remember (issue, post, recipient) for those not remembered yet; how many were new per
    (issue, post)."""
    returned = _add_new(conn, "event_post_firsts", ("issue_id", "post_id", "recipient"), firsts)
    return Counter((int(issue), int(post)) for issue, post in returned)


def _add_new(
    conn: Connection, table: str, columns: tuple[str, str, str], rows: Iterable[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Insert the (a, b, recipient) rows not in ``table`` yet; (a, b) of each that was new."""
    ordered = sorted(set(rows))
    names = ", ".join(columns)
    tail = f"ON CONFLICT ({names}) DO NOTHING RETURNING {columns[0]}, {columns[1]}"
    if conn.dialect.name == "postgresql":
        return _copy_returning(conn, table, columns, names, tail, ordered)
    return _insert_returning(conn, f"INSERT INTO {table} ({names})", tail, ordered, 3)


def add_post_clicks(
    conn: Connection, clicks: Counter[tuple[int, int]], readers: Counter[tuple[int, int]]
) -> None:
    """Add to the per-(issue, post) rollup: clicks, and readers who clicked for the first
    time."""
    rows = sorted(
        (issue, post, clicks[issue, post], readers[issue, post])
        for issue, post in set(clicks) | set(readers)
    )
    _upsert(
        conn,
        "INSERT INTO event_post_clicks (issue_id, post_id, clicks, readers)",
        "ON CONFLICT (issue_id, post_id) DO UPDATE SET "
        "clicks = event_post_clicks.clicks + excluded.clicks, "
        "readers = event_post_clicks.readers + excluded.readers",
        rows,
        4,
    )


def sent_times(conn: Connection, issue_ids: Iterable[int]) -> dict[int, datetime | None]:
    """The issues among ``issue_ids`` that exist, with when they were sent (None: not yet)."""
    wanted = sorted(set(issue_ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(db.issues.c.id, db.issues.c.sent_at).where(db.issues.c.id.in_(wanted))
    )
    return {int(issue): sent for issue, sent in rows}


def post_links(conn: Connection, issue_id: int) -> list[tuple[int, str]]:
    """(post id, URL) of every post of the issue, left out or not."""
    rows = conn.execute(
        select(db.posts.c.id, db.posts.c.url)
        .join(db.issue_posts, db.issue_posts.c.post_id == db.posts.c.id)
        .where(db.issue_posts.c.issue_id == issue_id)
        .distinct()
    )
    return [(int(post), str(url)) for post, url in rows]


@dataclass(frozen=True)
class Reader:
    id: int
    email_key: str
    status: str


def readers(conn: Connection, ids: Iterable[int], keys: Iterable[str]) -> list[Reader]:
    """The subscribers with one of these ids or address keys (for the few events that
    suppress)."""
    table = subscriber_tables.subscribers
    id_list, key_list = sorted(set(ids)), sorted(set(keys))
    if not id_list and not key_list:
        return []
    rows = conn.execute(
        select(table.c.id, table.c.email_key, table.c.status).where(
            table.c.id.in_(id_list) | table.c.email_key.in_(key_list)
        )
    )
    return [Reader(int(i), str(k), str(s)) for i, k, s in rows]


# reading -------------------------------------------------------------------------------------


def counts(conn: Connection, issue_ids: Iterable[int]) -> dict[int, Counter[str]]:
    """The per-kind rollup of each issue (``unique_open`` and ``unique_click`` included)."""
    wanted = sorted(set(issue_ids))
    found: dict[int, Counter[str]] = {issue: Counter() for issue in wanted}
    if wanted:
        table = db.event_counts
        rows = conn.execute(
            select(table.c.issue_id, table.c.kind, table.c.n).where(table.c.issue_id.in_(wanted))
        )
        for issue, kind, n in rows:
            found[int(issue)][str(kind)] = int(n)
    return found


@dataclass(frozen=True)
class PostClicks:
    post_id: int
    title: str
    url: str
    topics: tuple[str, ...]
    """The slugs of the issue's topics the post is shown under."""
    clicks: int
    readers: int
    """Readers who clicked it, each once."""


def post_clicks(conn: Connection, issue_id: int) -> list[PostClicks]:
    """Every post of the issue (left out ones too, should a reader have clicked one in an
    earlier preview: they are not) with its clicks, most clicked first."""
    posts, issue_posts, topics = db.posts, db.issue_posts, db.topics
    clicks = db.event_post_clicks
    shown: dict[int, list[str]] = {}
    for post, slug in conn.execute(
        select(issue_posts.c.post_id, topics.c.slug)
        .join(topics, topics.c.id == issue_posts.c.topic_id)
        .where(issue_posts.c.issue_id == issue_id, issue_posts.c.excluded.is_(False))
        .order_by(issue_posts.c.position)
    ):
        shown.setdefault(int(post), []).append(str(slug))
    counted = {
        int(post): (int(n), int(readers))
        for post, n, readers in conn.execute(
            select(clicks.c.post_id, clicks.c.clicks, clicks.c.readers).where(
                clicks.c.issue_id == issue_id
            )
        )
    }
    ids = sorted(set(shown) | {int(p) for p in counted})
    if not ids:
        return []
    rows = conn.execute(select(posts.c.id, posts.c.title, posts.c.url).where(posts.c.id.in_(ids)))
    out = [
        PostClicks(int(p), str(t), str(u), tuple(shown.get(int(p), ())), *counted.get(p, (0, 0)))
        for p, t, u in rows
    ]
    return sorted(out, key=lambda row: (-row.clicks, row.title))


# retention -----------------------------------------------------------------------------------


def prune_events(conn: Connection, cutoff: datetime, limit: int | None = None) -> int:
    """Delete raw events received before ``cutoff`` (at most ``limit`` of them, oldest
    first). Cheap when there are none: the oldest is one step along the ``received_at``
    index, and the limited delete walks that index too (a planner guessing from stale
    statistics would otherwise scan the table for the few it expects)."""
    table = db.events
    oldest = conn.execute(select(func.min(table.c.received_at))).scalar()
    if oldest is None or oldest >= cutoff:
        return 0
    expired = table.c.received_at < cutoff
    if limit is None:
        return int(conn.execute(delete(table).where(expired)).rowcount)
    first = (
        select(table.c.sg_event_id)
        .where(expired)
        .order_by(table.c.received_at)
        .limit(limit)
        .scalar_subquery()
    )
    return int(conn.execute(delete(table).where(table.c.sg_event_id.in_(first))).rowcount)


def closed_issues(conn: Connection, cutoff: datetime) -> list[int]:
    """Issues sent before ``cutoff`` that still have remembered openers or clickers."""
    issues, firsts = db.issues, db.event_firsts
    remembered = select(firsts.c.issue_id).where(firsts.c.issue_id == issues.c.id).exists()
    rows = conn.execute(select(issues.c.id).where(issues.c.sent_at < cutoff, remembered))
    return [int(issue) for (issue,) in rows]


def forget_firsts(conn: Connection, issue_ids: Sequence[int]) -> int:
    """Forget who opened or clicked these issues (and which posts); how many readers of the
    issues were forgotten."""
    if not issue_ids:
        return 0
    posts = db.event_post_firsts
    conn.execute(delete(posts).where(posts.c.issue_id.in_(issue_ids)))
    table = db.event_firsts
    return int(conn.execute(delete(table).where(table.c.issue_id.in_(issue_ids))).rowcount)


def raw_count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(db.events)).scalar_one())


# the inbox of staged batches -----------------------------------------------------------------


def stage(conn: Connection, received_at: datetime, events: int, rows: bytes) -> None:
    """Append one verified batch's rows (``events`` of them, as JSON) to the inbox."""
    table = db.event_inbox
    conn.execute(table.insert().values(received_at=received_at, events=events, rows=rows))


@dataclass(frozen=True)
class StagedBatch:
    id: int
    received_at: datetime
    events: int
    rows: bytes


def staged(
    conn: Connection, most_events: int, most_batches: int, up_to: int | None = None
) -> list[StagedBatch]:
    """The oldest staged batches, in the order they came, holding at most ``most_events``
    events between them (at least one batch, however large), at most ``most_batches``; only
    those up to id ``up_to`` if given. The sizes are read first, then only the bodies taken,
    by id: on PostgreSQL a lower id may become visible after a higher one (its transaction
    committed later), so no range of ids is taken to be what was read."""
    table = db.event_inbox
    sizes = select(table.c.id, table.c.events).order_by(table.c.id).limit(most_batches)
    if up_to is not None:
        sizes = sizes.where(table.c.id <= up_to)
    taken: list[int] = []
    total = 0
    for batch_id, events in conn.execute(sizes):
        if taken and total + int(events) > most_events:
            break
        taken.append(int(batch_id))
        total += int(events)
    if not taken:
        return []
    rows = conn.execute(
        select(table.c.id, table.c.received_at, table.c.events, table.c.rows)
        .where(table.c.id.in_(taken))
        .order_by(table.c.id)
    )
    return [StagedBatch(int(i), at, int(n), bytes(body)) for i, at, n, body in rows]


def last_staged(conn: Connection) -> int | None:
    """The id of the batch staged last, if any is staged."""
    return conn.execute(select(func.max(db.event_inbox.c.id))).scalar()


def staged_events(conn: Connection) -> int:
    """How many events wait in the inbox."""
    total = conn.execute(select(func.sum(db.event_inbox.c.events))).scalar()
    return int(total or 0)


def unstage(conn: Connection, batch_ids: Sequence[int]) -> None:
    """Delete these staged batches (applied)."""
    table = db.event_inbox
    if batch_ids:
        conn.execute(delete(table).where(table.c.id.in_(batch_ids)))
