"""The delivery ledger: one row per (issue, subscriber), written before anything is sent.

Deliveries are grouped into batches (one variant, up to 1000 recipients) when an issue is
recorded, a group of whole segments per transaction, and a batch can be sent as soon as its
group is committed. A batch is what workers claim, lease and mark, and a delivery's
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

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, NamedTuple

from sqlalchemy import Connection, Select, and_, column, func, insert, select, table, text, update
from sqlalchemy.sql.expression import TableClause

from digest import db
from digest.lifecycle import IssueStatus
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


@dataclass(frozen=True)
class Recorder:
    """The worker recording an issue, and how it keeps its lease on the recording."""

    worker: str
    clock: Callable[[], datetime]
    lease: timedelta


def take_recording(
    conn: Connection, issue_id: int, recorder: Recorder, alive: Callable[[str], bool]
) -> bool:
    """Whether ``recorder`` is now the one to record the issue: it moves a planned issue to
    sending, or takes over an unfinished recording whose recorder is gone (its lease ran out,
    or ``alive`` says so). A compare-and-set: of two workers trying, one wins."""
    i = db.issues.c
    now = recorder.clock()
    lease = {"recorder": recorder.worker, "recorder_until": now + recorder.lease}
    started = conn.execute(
        update(db.issues)
        .where(i.id == issue_id, i.status == IssueStatus.PLANNED)
        .values(status=IssueStatus.SENDING, **lease)
    ).rowcount
    if started:
        return True
    row = conn.execute(
        select(i.status, i.recorded_at, i.recorder, i.recorder_until).where(i.id == issue_id)
    ).one()
    if row.status != IssueStatus.SENDING or row.recorded_at is not None:
        return False
    if _recorder_alive(row.recorder, row.recorder_until, now, alive):
        return False
    same_recorder = i.recorder.is_(None) if row.recorder is None else i.recorder == row.recorder
    taken = conn.execute(
        update(db.issues)
        .where(i.id == issue_id, i.recorded_at.is_(None), same_recorder)
        .values(**lease)
    ).rowcount
    return bool(taken)


def recording_open(
    conn: Connection, issue_id: int, now: datetime, alive: Callable[[str], bool]
) -> bool:
    """Whether the issue's recording is unfinished and its recorder still at it (so that
    more batches may come)."""
    i = db.issues.c
    row = conn.execute(
        select(i.recorded_at, i.recorder, i.recorder_until).where(i.id == issue_id)
    ).one()
    return row.recorded_at is None and _recorder_alive(row.recorder, row.recorder_until, now, alive)


def recorded(conn: Connection, issue_id: int) -> bool:
    return conn.execute(
        select(db.issues.c.recorded_at.is_not(None)).where(db.issues.c.id == issue_id)
    ).scalar_one()


def _recorder_alive(
    worker: str | None, until: datetime | None, now: datetime, alive: Callable[[str], bool]
) -> bool:
    return worker is not None and until is not None and until > now and alive(worker)


def record(
    conn: Connection,
    issue_id: int,
    members: Select[int, str, str, str] | None,
    segment_of: Callable[[str], str],
    batch_size: int,
    recorder: Recorder,
    *,
    group_size: int = 50_000,
    proceed: Callable[[], bool] = lambda: True,
) -> int:
    """Write the batches of an issue and a delivery per member not recorded yet, a group of
    segments per transaction; returns the deliveries written.

    ``conn`` is outside any transaction. ``members`` selects (subscriber id, their topics in
    the issue as text, address, name), or is None when nobody gets the issue; ``segment_of``
    turns such a text into the segment's key. The database does the per-member work: the
    members are placed once, numbered in (topics, subscriber) order into a temporary table,
    so that each segment is a run of consecutive places and each batch a run within it; then,
    group after group, the group's batches and every delivery of them in one INSERT … SELECT
    over a range of places, committed together. A group's batches can be sent while the next
    ones are written: with everything in one transaction, a million deliveries kept the send
    waiting for a third of its time. ``group_size`` bounds a group's recipients, so that
    sending starts soon and a transaction (on SQLite, the one writer) stays short.

    Each group's transaction first renews the recorder's lease; when another worker has taken
    the recording over, or ``proceed`` says stop, recording stops. The last step marks the
    issue recorded. Whoever finishes a recording left unfinished (:func:`take_recording`)
    records the members without a delivery yet: the unique (issue, subscriber) key makes any
    slip an error before anything is sent, never a duplicate."""
    temporary = _Temporary(conn)
    written = 0
    try:
        planned: list[tuple[str, int, int]] = []
        if members is not None:
            with conn.begin():
                planned = _place(conn, temporary, issue_id, members, segment_of, batch_size)
        for group in _groups(planned, group_size):
            if not proceed():
                _let_go(conn, issue_id, recorder)
                return written
            with conn.begin():
                now = recorder.clock()
                if not _renew(conn, issue_id, recorder, now):
                    return written
                written += _write_group(conn, issue_id, group, now)
        with conn.begin():
            now = recorder.clock()
            if _renew(conn, issue_id, recorder, now):
                conn.execute(
                    update(db.issues)
                    .where(db.issues.c.id == issue_id)
                    .values(recorded_at=now, recorder_until=None)
                )
    finally:
        temporary.drop_all()
    return written


def _place(
    conn: Connection,
    temporary: _Temporary,
    issue_id: int,
    members: Select[int, str, str, str],
    segment_of: Callable[[str], str],
    batch_size: int,
) -> list[tuple[str, int, int]]:
    """Members without a delivery, in (topics, subscriber) order, into a temporary table that
    numbers them as they come; and the batches planned from each segment's run of places.

    One sort of the members, and every later step reads a range of integers: placing them by
    segment number instead took a second pass (and a second sort) over a million rows. The
    runs are checked, not assumed: a run with a gap would make a batch of mixed segments."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        # The sort of a million members; with the default 4 MB it sorted on disk.
        conn.exec_driver_sql("SET LOCAL work_mem = '128MB'")
        place = "place BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    else:
        place = "place INTEGER PRIMARY KEY"  # the rowid, numbered as rows are inserted
    temporary.create(
        _RECORDING_PLACED,
        f"{place}, subscriber_id INTEGER NOT NULL, topics TEXT NOT NULL, "
        "email TEXT NOT NULL, name TEXT NOT NULL",
    )
    m = members.subquery()
    subscriber_id, topics, email, name = m.c
    unrecorded = select(subscriber_id, topics, email, name)
    if conn.execute(select(_D.issue_id).where(_D.issue_id == issue_id).limit(1)).first():
        # Finishing a recording left unfinished: who has a delivery keeps it.
        unrecorded = unrecorded.where(
            ~select(_D.subscriber_id)
            .where(_D.issue_id == issue_id, _D.subscriber_id == subscriber_id)
            .exists()
        )
    p = _RECORDING_PLACED.c
    conn.execute(
        insert(_RECORDING_PLACED).from_select(
            ["subscriber_id", "topics", "email", "name"],
            # Bytewise on PostgreSQL too: the order only has to keep equal topics together,
            # and the database's own collation sorted a tenth slower (much more, elsewhere).
            unrecorded.order_by(
                topics.collate("C") if postgres else topics,
                subscriber_id,
            ),
        )
    )
    runs = conn.execute(
        select(p.topics, func.min(p.place), func.max(p.place), func.count()).group_by(p.topics)
    ).all()
    if any(last - first + 1 != n for _, first, last, n in runs):
        raise RuntimeError(f"issue {issue_id}: members were not placed segment after segment")
    temporary.create(
        _RECORDING_BATCHES,
        "first INTEGER PRIMARY KEY, size INTEGER NOT NULL, batch_id INTEGER NOT NULL",
    )
    temporary.analyze()
    return plan_batches(
        [
            (segment_of(topics), first, n)
            for topics, first, _, n in sorted(runs, key=lambda r: r[1])
        ],
        batch_size,
    )


def _groups(planned: list[tuple[str, int, int]], limit: int) -> list[list[tuple[str, int, int]]]:
    """Planned batches in groups of whole segments, in order, each up to ``limit``
    recipients (a segment larger than the limit makes a group of its own)."""
    groups: list[list[tuple[str, int, int]]] = []
    current: list[tuple[str, int, int]] = []
    size = 0
    for _, segment_batches in groupby(planned, key=lambda batch: batch[0]):
        batches = list(segment_batches)
        recipients = sum(n for _, _, n in batches)
        if current and size + recipients > limit:
            groups.append(current)
            current, size = [], 0
        current += batches
        size += recipients
    if current:
        groups.append(current)
    return groups


def _write_group(
    conn: Connection, issue_id: int, group: list[tuple[str, int, int]], now: datetime
) -> int:
    """The group's batches, and the deliveries of their places."""
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
            for key, _, size in group
        ],
    ).scalars()
    conn.execute(_RECORDING_BATCHES.delete())
    conn.execute(
        insert(_RECORDING_BATCHES),
        [
            {"first": first, "size": size, "batch_id": batch_id}
            for (_, first, size), batch_id in zip(group, batch_ids, strict=True)
        ],
    )
    stamp = _bound(conn, now)
    _, first, _ = group[0]
    _, last_first, last_size = group[-1]
    written = conn.execute(
        text(
            _WRITE_DELIVERIES.format_map(
                _JOINED if conn.dialect.name == "postgresql" else _LOOKED_UP
            )
        ),
        {
            "issue_id": issue_id,
            "created": stamp,
            "changed": stamp,
            "first": first,
            "last": last_first + last_size - 1,
        },
    ).rowcount
    expected = sum(size for _, _, size in group)
    if written != expected:
        raise RuntimeError(f"issue {issue_id}: {written} deliveries for {expected} members")
    return int(written)


def _renew(conn: Connection, issue_id: int, recorder: Recorder, now: datetime) -> bool:
    """Extend the recorder's lease, if the recording is still its own (and unfinished)."""
    i = db.issues.c
    return bool(
        conn.execute(
            update(db.issues)
            .where(i.id == issue_id, i.recorder == recorder.worker, i.recorded_at.is_(None))
            .values(recorder_until=now + recorder.lease)
        ).rowcount
    )


def _let_go(conn: Connection, issue_id: int, recorder: Recorder) -> None:
    """Stopped before finishing: anyone may finish the recording at once."""
    i = db.issues.c
    with conn.begin():
        conn.execute(
            update(db.issues)
            .where(i.id == issue_id, i.recorder == recorder.worker)
            .values(recorder_until=recorder.clock())
        )


_RECORDING_PLACED = table(
    "recording_placed",
    column("place"),
    column("subscriber_id"),
    column("topics"),
    column("email"),
    column("name"),
)
_RECORDING_BATCHES = table("recording_batches", column("first"), column("size"), column("batch_id"))
# A place's batch: on SQLite, the one whose run starts last at or before it, looked up for
# each place in the group (an index seek); on PostgreSQL, each batch's run of places joined
# to the members' (that lookup, as a subplan per row, took half as long again).
_WRITE_DELIVERIES = """
    INSERT INTO deliveries (issue_id, subscriber_id, batch_id, email, name, created_at, changed_at)
    SELECT :issue_id, p.subscriber_id, {batch}, p.email, p.name, :created, :changed
    FROM recording_placed p {join}
    WHERE p.place BETWEEN :first AND :last
"""
_LOOKED_UP = {
    "batch": """(SELECT b.batch_id FROM recording_batches b WHERE b.first <= p.place
                 ORDER BY b.first DESC LIMIT 1)""",
    "join": "",
}
_JOINED = {
    "batch": "b.batch_id",
    "join": """JOIN (SELECT batch_id, generate_series(first, first + size - 1) AS place
                     FROM recording_batches) b ON b.place = p.place""",
}


class _Temporary:
    """Temporary tables for one recording, on its connection: they outlive its transactions
    and are dropped at the end (a rollback undoes a creation, on both databases)."""

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
        """Drop what exists; a connection that cannot is discarded rather than pooled with
        the tables still in it."""
        try:
            if self.conn.in_transaction():
                self.conn.rollback()
            with self.conn.begin():
                for name in reversed(self.created):
                    self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        except Exception:
            self.conn.invalidate()
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
    """Give back leased batches that were never handed over, or that the provider did not take
    (the send stopped): pending again, for anyone."""
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
    """The deliveries of a batch still to send (not failed on their own), with the address and
    name they were recorded for, and whether their subscriber may still get email.

    That last check looks each recipient up in a small partial index of the subscribers who
    may not (``subscribers.tables.UNSENDABLE``): a miss for nearly everyone, instead of reading
    a thousand subscriber rows per batch. Read through the driver's own cursor: a million rows per
    million recipients, and SQLAlchemy's result rows cost more than the query. On SQLite the
    batch comes back as one JSON array: Python's sqlite3 module releases the GIL for every row
    it steps to, and while other threads are busy each row then waited up to the
    interpreter's switch interval to take it back (reading batches row by row took 3 times the
    CPU and 20 times the time)."""
    raw: Any = conn.connection.driver_connection
    cursor = raw.cursor()
    try:
        parameters = (_bound(conn, now), batch_id)
        if conn.dialect.name == "postgresql":
            cursor.execute(members_query("postgresql", "%s"), parameters)
            return [Member(*row) for row in cursor.fetchall()]
        cursor.execute(members_query("sqlite", "?"), parameters)
        return [
            Member(i, email, name, bool(active))
            for i, email, name, active in json.loads(cursor.fetchone()[0])
        ]
    finally:
        cursor.close()


def members_query(dialect: str, marker: str) -> str:
    """The query of :func:`members` (the time, then the batch, as ``marker`` parameters).

    The first condition on subscribers is the partial index's own, word for word: a planner
    uses the index only when the query says what it covers. SQLite is told to use it: left
    to itself, it reads the subscriber's row by id, which is what the index is there to
    avoid."""
    sqlite = dialect == "sqlite"
    columns = _MEMBER_COLUMNS.format(
        hint="INDEXED BY ix_subscribers_unsendable" if sqlite else "", marker=marker
    )
    return _MEMBERS.format(
        columns=f"json_group_array(json_array({columns}))" if sqlite else columns, marker=marker
    )


_MEMBER_COLUMNS = """d.subscriber_id, d.email, d.name,
    NOT EXISTS (
        SELECT 1 FROM subscribers s {hint}
        WHERE s.id = d.subscriber_id
          AND (s.status != 'active' OR s.paused_until IS NOT NULL)
          AND (s.status != 'active' OR s.paused_until > {marker})
    )"""
_MEMBERS = """
    SELECT {columns}
    FROM deliveries d
    WHERE d.batch_id = {marker} AND d.status IS NULL
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
