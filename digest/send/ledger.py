"""The delivery ledger: one row per (issue, subscriber), written before anything is sent.

Deliveries are grouped into batches (one variant, up to 1000 recipients) when an issue is
recorded, in one transaction. A batch is what workers claim, lease and mark, and a delivery's
state is its batch's, unless the delivery has an outcome of its own (failed: refused by the
provider, or no longer active). So recording writes each delivery row once, batch after
batch, and an outcome changes one batch row and only the deliveries that differ from it: the
deliveries of a million-recipient send are written once, not rewritten a thousand rows per
commit (which, through the (issue, subscriber) index, cost more than everything else).

Batch states: pending → submitting (claimed under a lease by one worker) → submitted, or
failed, or ambiguous (left ``submitting`` by a worker that died or whose lease ran out, so
nobody knows whether the provider got it). Each time a batch becomes ambiguous its
``ambiguities`` grows: the audit of what a ``resend`` may have duplicated.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, and_, column, func, insert, select, table, text, update
from sqlalchemy.sql.expression import TableClause

from digest import db
from digest.send.batch import plan_batches

PENDING = "pending"
SUBMITTING = "submitting"
SUBMITTED = "submitted"
FAILED = "failed"
AMBIGUOUS = "ambiguous"

_B = db.send_batches.c
_D = db.deliveries.c
STATE = func.coalesce(_D.status, _B.status)
"""A delivery's state: its own outcome, else its batch's."""


@dataclass(frozen=True)
class Claimed:
    id: int
    segment: str
    size: int


class Member(NamedTuple):
    """A delivery of a claimed batch, with what sending needs of its subscriber (a tuple: a
    send reads a million)."""

    subscriber_id: int
    email: str
    name: str
    active: bool
    """Still gets email now (active, not paused): people change their minds mid-send."""


def record(
    conn: Connection,
    issue_id: int,
    members: Select[int, str],
    segment_of: Callable[[str], str],
    batch_size: int,
    now: datetime,
) -> int:
    """Write the batches of an issue and a delivery per member; returns the deliveries.

    ``members`` selects (subscriber id, their topics in the issue as text); ``segment_of``
    turns such a text into the segment's key. The database does the per-member work, in
    three statements over temporary tables: members and their topics; their count per
    segment, from which the batches are planned; then every delivery in one INSERT … SELECT,
    in the order the placing sorted them (batch after batch, so the rows a worker reads for a
    batch lie together). Done in Python, reading a million members and writing them back
    cost three times as much.

    The caller makes sure one process records an issue (the issue's planned → sending step);
    the unique (issue, subscriber) constraint turns any slip into an error before anything is
    sent, never into a duplicate."""
    if conn.dialect.name == "postgresql":
        # The placing sorts every member once; with the default 4 MB it sorted on disk.
        conn.exec_driver_sql("SET LOCAL work_mem = '128MB'")
    temporary = _Temporary(conn)
    temporary.create(_RECORDING_MEMBERS, "subscriber_id INTEGER NOT NULL, topics TEXT NOT NULL")
    conn.execute(insert(_RECORDING_MEMBERS).from_select(["subscriber_id", "topics"], members))
    m = _RECORDING_MEMBERS.c
    groups = conn.execute(select(m.topics, func.count()).group_by(m.topics)).all()
    segment = {topics: segment_of(topics) for topics, _ in groups}
    sizes: Counter[str] = Counter()
    for topics, n in groups:
        sizes[segment[topics]] += n
    planned = plan_batches(sizes, batch_size)
    written = 0
    if planned:
        batch_ids = conn.execute(
            insert(db.send_batches).returning(_B.id, sort_by_parameter_order=True),
            [
                {
                    "issue_id": issue_id,
                    "segment": key,
                    "size": size,
                    "status": PENDING,
                    "created_at": now,
                    "changed_at": now,
                }
                for key, _, size in planned
            ],
        ).scalars()
        # Segments by number, in the plan's order: placing members then sorts and joins on
        # integers, and the rows come out batch after batch.
        number = {key: n for n, key in enumerate(dict.fromkeys(key for key, _, _ in planned))}
        temporary.create(_RECORDING_SEGMENTS, "topics TEXT NOT NULL, segment INTEGER NOT NULL")
        conn.execute(
            insert(_RECORDING_SEGMENTS),
            [{"topics": topics, "segment": number[key]} for topics, key in segment.items()],
        )
        # A batch's place, segment * stride + chunk: one integer to join on.
        stride = max(chunk for _, chunk, _ in planned) + 1
        temporary.create(_RECORDING_BATCHES, "place INTEGER PRIMARY KEY, batch_id INTEGER NOT NULL")
        conn.execute(
            insert(_RECORDING_BATCHES),
            [
                {"place": number[key] * stride + chunk, "batch_id": batch_id}
                for (key, chunk, _), batch_id in zip(planned, batch_ids, strict=True)
            ],
        )
        temporary.analyze()
        stamp = _bound(conn, now)
        written = conn.execute(
            text(_WRITE_DELIVERIES),
            {
                "issue_id": issue_id,
                "stride": stride,
                "size": batch_size,
                "created": stamp,
                "changed": stamp,
            },
        ).rowcount
    temporary.drop_all()
    if written != sum(sizes.values()):
        raise RuntimeError(f"issue {issue_id}: {written} deliveries for {sizes.total()} members")
    return written


_RECORDING_MEMBERS = table("recording_members", column("subscriber_id"), column("topics"))
_RECORDING_SEGMENTS = table("recording_segments", column("topics"), column("segment"))
_RECORDING_BATCHES = table("recording_batches", column("place"), column("batch_id"))
# Chunk k of a segment: its members k * size … (k + 1) * size - 1 by subscriber id, the rule
# of plan_batches (integer division on both databases).
_WRITE_DELIVERIES = """
    INSERT INTO deliveries (issue_id, subscriber_id, batch_id, created_at, changed_at)
    SELECT :issue_id, placed.subscriber_id, b.batch_id, :created, :changed
    FROM (
        SELECT r.subscriber_id,
               s.segment * :stride
               + (row_number() OVER (PARTITION BY s.segment ORDER BY r.subscriber_id) - 1)
                 / :size AS place
        FROM recording_members r JOIN recording_segments s ON s.topics = r.topics
    ) placed
    JOIN recording_batches b ON b.place = placed.place
"""


class _Temporary:
    """Temporary tables for one transaction: dropped before it ends, and a rollback undoes
    their creation (on both databases)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.created: list[str] = []

    def create(self, name: TableClause, columns: str) -> None:
        self.conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {name.name} ({columns})")
        self.created.append(name.name)

    def analyze(self) -> None:
        """Let PostgreSQL's planner see the tables' sizes (autovacuum never analyzes temporary
        tables; guessing, it sorted a million rows twice and compiled the query with JIT)."""
        if self.conn.dialect.name == "postgresql":
            for name in self.created:
                self.conn.exec_driver_sql(f"ANALYZE {name}")

    def drop_all(self) -> None:
        for name in reversed(self.created):
            self.conn.exec_driver_sql(f"DROP TABLE {name}")
        self.created.clear()


def _bound(conn: Connection, moment: datetime) -> Any:
    """``moment`` as the driver stores it in a UtcDateTime column."""
    processor = _D.created_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return processor(moment) if processor else moment


def claim(
    conn: Connection,
    issue_id: int,
    limit: int,
    worker: str,
    now: datetime,
    lease_until: datetime,
) -> list[Claimed]:
    """Lease up to ``limit`` pending batches to ``worker``; two workers never get the same.

    One statement. On PostgreSQL the batches are picked FOR UPDATE SKIP LOCKED in a
    materialized CTE, evaluated once (in a plain ``WHERE id IN (SELECT … LIMIT n SKIP
    LOCKED)``, PostgreSQL may run the subquery more than once and lease more than ``n``). On
    SQLite the UPDATE runs under the database's write lock."""
    picked: Any = (
        select(_B.id)
        .where(_B.issue_id == issue_id, _B.status == PENDING)
        .order_by(_B.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        picked = select(picked.c.id)
    claimed = conn.execute(
        update(db.send_batches)
        .where(_B.id.in_(picked), _B.status == PENDING)
        .values(
            status=SUBMITTING,
            worker=worker,
            lease_until=lease_until,
            attempts=_B.attempts + 1,
            changed_at=now,
        )
        .returning(_B.id, _B.segment, _B.size)
    ).all()
    return sorted((Claimed(*r) for r in claimed), key=lambda c: c.id)


def unclaim(conn: Connection, batch_ids: Sequence[int], worker: str, now: datetime) -> None:
    """Give back leased batches that were never handed over: pending again, for anyone."""
    if batch_ids:
        conn.execute(
            update(db.send_batches)
            .where(_B.id.in_(batch_ids), _B.status == SUBMITTING, _B.worker == worker)
            .values(
                status=PENDING,
                worker=None,
                lease_until=None,
                attempts=_B.attempts - 1,
                changed_at=now,
            )
        )


def members(conn: Connection, batch_id: int, now: datetime) -> list[Member]:
    """The deliveries of a batch still to send (not failed on their own), with their
    subscribers.

    Read through the driver's own cursor: a million rows per million recipients, and
    SQLAlchemy's result rows cost more than the query."""
    marker = "%s" if conn.dialect.name == "postgresql" else "?"
    raw: Any = conn.connection.driver_connection
    cursor = raw.cursor()
    try:
        cursor.execute(_MEMBERS.format(marker), (_bound(conn, now), batch_id))
        return [Member(*row) for row in cursor.fetchall()]
    finally:
        cursor.close()


_MEMBERS = """
    SELECT s.id, s.email, s.name,
           s.status = 'active' AND (s.paused_until IS NULL OR s.paused_until <= {0})
    FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
    WHERE d.batch_id = {0} AND d.status IS NULL
"""


def settle(
    conn: Connection, outcomes: Sequence[tuple[Claimed, Mapping[int, str]]], now: datetime
) -> list[int]:
    """The provider took these batches: in each, the subscribers of its failures (id →
    reason) failed and every other delivery is submitted. Returns how many were submitted,
    batch by batch; the batches change in one statement.

    A batch that meanwhile became ambiguous (a lease that ran out) is submitted too: the answer
    says it was accepted."""
    failed: dict[int, int] = {}
    for batch, failures in outcomes:
        failed[batch.id] = _fail_own(conn, batch.id, failures, now) if failures else 0
    attempts: dict[int, int] = dict(
        conn.execute(
            update(db.send_batches)
            .where(_B.id.in_([batch.id for batch, _ in outcomes]))
            .values(status=SUBMITTED, lease_until=None, error=None, changed_at=now)
            .returning(_B.id, _B.attempts)
        ).all()
    )
    submitted = []
    for batch, _ in outcomes:
        # Deliveries get outcomes of their own only here: if the batch was never claimed
        # again, the failures just written are all it has (and nothing needs counting).
        ok = batch.size - failed[batch.id] if attempts[batch.id] == 1 else _open(conn, batch.id)
        if failed[batch.id] and not ok:
            _finish(conn, batch.id, FAILED, now)
        submitted.append(ok)
    return submitted


def _fail_own(conn: Connection, batch_id: int, failures: Mapping[int, str], now: datetime) -> int:
    by_reason: defaultdict[str, list[int]] = defaultdict(list)
    for subscriber_id, reason in failures.items():
        by_reason[reason].append(subscriber_id)
    return sum(
        conn.execute(
            update(db.deliveries)
            .where(_D.batch_id == batch_id, _D.subscriber_id.in_(ids), _D.status.is_(None))
            .values(status=FAILED, error=reason, changed_at=now)
        ).rowcount
        for reason, ids in by_reason.items()
    )


def fail(conn: Connection, batch_id: int, error: str, now: datetime) -> int:
    """Refused or unsendable: every delivery of the batch without an outcome of its own failed,
    with the batch's reason."""
    _finish(conn, batch_id, FAILED, now, error)
    return _open(conn, batch_id)


def mark_unknown(conn: Connection, batch_id: int, error: str, now: datetime) -> int:
    """Handed over without an answer: the batch is ambiguous, once more. Returns the
    deliveries that may or may not have been sent."""
    _finish(conn, batch_id, AMBIGUOUS, now, error, ambiguity=True)
    return _open(conn, batch_id)


def _open(conn: Connection, batch_id: int) -> int:
    """Deliveries whose state is their batch's: its size less those with an outcome of their
    own (counted in a small partial index, not by visiting the batch's rows)."""
    size = select(_B.size).where(_B.id == batch_id).scalar_subquery()
    own = select(func.count()).where(_D.batch_id == batch_id, _D.status.is_not(None))
    return int(conn.execute(select(size - own.scalar_subquery())).scalar_one())


def _finish(
    conn: Connection,
    batch_id: int,
    status: str,
    now: datetime,
    error: str | None = None,
    *,
    ambiguity: bool = False,
) -> None:
    values: dict[str, Any] = {
        "status": status,
        "lease_until": None,
        "error": error,
        "changed_at": now,
    }
    if ambiguity:
        values["ambiguities"] = _B.ambiguities + 1
    conn.execute(update(db.send_batches).where(_B.id == batch_id).values(**values))


def expire(conn: Connection, issue_id: int, now: datetime, alive: Callable[[str], bool]) -> int:
    """Batches left ``submitting`` by a worker that is gone become ambiguous.

    A worker is gone when its lease has run out, or when ``alive`` says so (a dead process on
    this machine: no need to wait for its lease). Batches of live workers are left alone, so a
    worker joining a send in progress never takes over another's batch. Returns the number of
    deliveries made ambiguous."""
    held = conn.execute(
        select(_B.id, _B.worker, _B.lease_until).where(
            _B.issue_id == issue_id, _B.status == SUBMITTING
        )
    ).all()
    total = 0
    for batch_id, worker, lease_until in held:
        if lease_until is None or lease_until <= now or not alive(worker or ""):
            total += mark_unknown(
                conn, batch_id, f"left in flight by {worker}; the provider may have it", now
            )
    return total


def release(conn: Connection, issue_id: int, worker: str, error: str, now: datetime) -> int:
    """A worker that stops abruptly gives up its batches: each one it still holds may have
    been handed over, so it becomes ambiguous (its deliveries too)."""
    held = conn.execute(
        select(_B.id).where(_B.issue_id == issue_id, _B.status == SUBMITTING, _B.worker == worker)
    ).scalars()
    return sum(mark_unknown(conn, batch_id, error, now) for batch_id in list(held))


def requeue_ambiguous(conn: Connection, issue_id: int, now: datetime) -> int:
    """The ``resend`` policy: ambiguous batches go back to pending (keeping their count of
    ambiguities). Returns the deliveries that will be sent again."""
    ambiguous = and_(_B.issue_id == issue_id, _B.status == AMBIGUOUS)
    again = conn.execute(
        select(func.count())
        .select_from(db.deliveries.join(db.send_batches, _B.id == _D.batch_id))
        .where(ambiguous, _D.status.is_(None))
    ).scalar_one()
    conn.execute(update(db.send_batches).where(ambiguous).values(status=PENDING, changed_at=now))
    return int(again)


def open_batches(conn: Connection, issue_id: int) -> Counter[str]:
    """Batches still pending or in flight."""
    return Counter(
        {
            status: int(n)
            for status, n in conn.execute(
                select(_B.status, func.count())
                .where(_B.issue_id == issue_id, _B.status.in_((PENDING, SUBMITTING)))
                .group_by(_B.status)
            )
        }
    )


def segment_sizes(conn: Connection, issue_id: int) -> dict[str, int]:
    """Recipients recorded per segment (empty before the issue is recorded)."""
    return {
        segment: int(n)
        for segment, n in conn.execute(
            select(_B.segment, func.sum(_B.size))
            .where(_B.issue_id == issue_id)
            .group_by(_B.segment)
        )
    }


def ambiguities(conn: Connection, issue_id: int) -> int:
    """How many times deliveries of the issue were found ambiguous, over every resume: each
    delivery counts its batch's ambiguities (the most a ``resend`` can have duplicated)."""
    total = conn.execute(
        select(func.coalesce(func.sum(_B.ambiguities * _B.size), 0)).where(_B.issue_id == issue_id)
    ).scalar_one()
    return int(total)


def counts(conn: Connection, issue_id: int) -> Counter[str]:
    """Deliveries per state."""
    return Counter(
        {
            state: int(n)
            for state, n in conn.execute(
                select(STATE, func.count())
                .select_from(db.deliveries.join(db.send_batches, _B.id == _D.batch_id))
                .where(_D.issue_id == issue_id)
                .group_by(STATE)
            )
        }
    )
