"""Recording an issue in the ledger (:mod:`digest.send.ledger`): its batches, and a delivery per
member, written before anything is sent, under a lease on the recording so that one worker
records and another can take over when it is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from sqlalchemy import Connection, Select, column, func, insert, select, table, text, update
from sqlalchemy.sql.expression import TableClause

from digest import db
from digest.lifecycle import IssueStatus
from digest.send.batch import plan_batches
from digest.send.ledger import PENDING, bound
from digest.stores import releases

_B = db.send_batches.c
_D = db.deliveries.c


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
    final: bool = True,
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
    issue recorded and settles the watermarks of its cadence's readers who switched
    (:func:`digest.stores.releases.settle_watermarks`), in the same transaction. Whoever
    finishes a recording left unfinished (:func:`take_recording`)
    records the members without a delivery yet: the unique (issue, subscriber) key makes any
    slip an error before anything is sent, never a duplicate.

    ``final`` False records one local-time wave of the issue (``members`` then selects its
    due readers): the issue is not marked recorded, and the recorder lets go at once, so the
    next wave takes the recording up and records who has no delivery yet."""
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
                if final:
                    conn.execute(
                        update(db.issues)
                        .where(db.issues.c.id == issue_id)
                        .values(recorded_at=now, recorder_until=None)
                    )
                    # After the issue's last wave (if it has waves): readers settle here.
                    releases.settle_watermarks(conn, issue_id)
                else:
                    conn.execute(
                        update(db.issues)
                        .where(db.issues.c.id == issue_id)
                        .values(recorder=None, recorder_until=None)
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
        # Placing reads every reader of the cadence, so a nested loop is never its plan; but
        # PostgreSQL, blind to the NULLs an outer join to the readers' cadences makes,
        # estimated one reader for a digest whose readers never chose a cadence and probed
        # the subscribers once per subscription (2.6 s for 300,000 readers, against 1.7 s).
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")
        place = "place BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    else:
        place = "place INTEGER PRIMARY KEY"  # the rowid, numbered as rows are inserted
    temporary.create(
        _RECORDING_PLACED,
        f"{place}, subscriber_id INTEGER NOT NULL, topics TEXT NOT NULL, "
        "email TEXT NOT NULL, name TEXT NOT NULL",
    )
    conn.execute(
        insert(_RECORDING_PLACED).from_select(
            ["subscriber_id", "topics", "email", "name"],
            _unrecorded(conn, issue_id, members, postgres),
        )
    )
    p = _RECORDING_PLACED.c
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


def _unrecorded(
    conn: Connection, issue_id: int, members: Select[int, str, str, str], postgres: bool
) -> Select[int, str, str, str]:
    """The members without a delivery yet, in (topics, subscriber) order."""
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
    # Bytewise on PostgreSQL too: the order only has to keep equal topics together, and the
    # database's own collation sorted a tenth slower (much more, elsewhere).
    return unrecorded.order_by(topics.collate("C") if postgres else topics, subscriber_id)


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
    stamp = bound(conn, now)
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
