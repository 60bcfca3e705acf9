"""Leases and outcomes in the ledger (:mod:`digest.send.ledger`): workers claim pending batches
under a lease, mark each one handed as it goes to the transport, and each batch ends
submitted, failed or ambiguous. Of the batches whose worker is gone, those it had handed over
become ambiguous and the others pending again; the ``resend`` policy puts ambiguous ones back.
"""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, func, insert, select, update

from digest import db
from digest.send.ledger import (
    AMBIGUOUS,
    FAILED,
    HANDED,
    LEASED,
    PENDING,
    SUBMITTED,
    SUBMITTING,
    bound,
)

_B = db.send_batches.c
_D = db.deliveries.c


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


def claim(
    conn: Connection,
    issue_id: int,
    limit: int,
    worker: str,
    now: datetime,
    lease_until: datetime,
) -> list[Claimed]:
    """Lease up to ``limit`` pending batches to ``worker``; two workers never get the same.

    One statement, built once per database (:func:`_claim_statement`): it runs a few times a
    second for the whole send, and building it each time cost SQLAlchemy more than running
    it."""
    claimed = conn.execute(
        _claim_statement(conn.dialect.name == "postgresql"),
        {
            "issue": issue_id,
            "limit": limit,
            "leased_to": worker,
            "leased_until": lease_until,
            "now": now,
        },
    ).all()
    return sorted((Claimed(*r) for r in claimed), key=lambda c: c.id)


@functools.cache
def _claim_statement(postgres: bool) -> Any:
    """On PostgreSQL the batches are picked FOR UPDATE SKIP LOCKED in a materialized CTE,
    evaluated once (in a plain ``WHERE id IN (SELECT … LIMIT n SKIP LOCKED)``, PostgreSQL may
    run the subquery more than once and lease more than ``n``). On SQLite the UPDATE runs
    under the database's write lock."""
    picked: Any = (
        select(_B.id)
        .where(_B.issue_id == bindparam("issue"), _B.status == PENDING)
        .order_by(_B.id)
        .limit(bindparam("limit"))
    )
    if postgres:
        picked = picked.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
        picked = select(picked.c.id)
    return (
        update(db.send_batches)
        .where(_B.id.in_(picked), _B.status == PENDING)
        .values(
            status=SUBMITTING,
            worker=bindparam("leased_to", type_=_B.worker.type),
            lease_until=bindparam("leased_until", type_=_B.lease_until.type),
            attempts=_B.attempts + 1,
            changed_at=bindparam("now", type_=_B.changed_at.type),
        )
        .returning(_B.id, _B.segment, _B.size)
    )


def hand(conn: Connection, batch_id: int, worker: str) -> bool:
    """Mark a leased batch handed to the transport, just before its request: from here on a
    worker that dies leaves it ambiguous (before, pending). One write per batch, through the
    driver's own cursor (a statement built by SQLAlchemy for each batch cost more than the
    write). False when the batch is no longer this worker's (its lease ran out and someone
    else took it): it must not be handed over.

    ``conn`` commits each statement (AUTOCOMMIT): the mark must be in the database before
    the request leaves."""
    marker = "%s" if conn.dialect.name == "postgresql" else "?"
    raw: Any = conn.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        cursor.execute(_HAND.format(marker=marker), (HANDED, batch_id, SUBMITTING, worker))
        return bool(cursor.rowcount == 1)
    finally:
        cursor.close()


_HAND = (
    "UPDATE send_batches SET status = {marker} "
    "WHERE id = {marker} AND status = {marker} AND worker = {marker}"
)


def unclaim(conn: Connection, batch_ids: Sequence[int], worker: str, now: datetime) -> None:
    """Give back leased batches that were never handed over, or that the provider did not take
    (the send stopped): pending again, for anyone."""
    if batch_ids:
        conn.execute(
            update(db.send_batches)
            .where(_B.id.in_(batch_ids), _B.status.in_(LEASED), _B.worker == worker)
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
    may not (``db.UNSENDABLE``): a miss for nearly everyone, instead of reading a thousand
    subscriber rows per batch. Read through the driver's own cursor: a million rows per
    million recipients, and SQLAlchemy's result rows cost more than the query. On SQLite the
    batch comes back as one JSON array: Python's sqlite3 module releases the GIL for every row
    it steps to, and while other threads are busy each row then waited up to the
    interpreter's switch interval to take it back (reading batches row by row took 3 times the
    CPU and 20 times the time)."""
    raw: Any = conn.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        parameters = (bound(conn, now), batch_id)
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
    batch by batch; the batches change in one statement (built once, as :func:`claim`'s).

    A batch that meanwhile became ambiguous (a lease that ran out) is submitted too: the answer
    says it was accepted."""
    failed: dict[int, int] = {}
    for batch, failures in outcomes:
        failed[batch.id] = _fail_own(conn, batch.id, failures, now) if failures else 0
    attempts: dict[int, int] = dict(
        conn.execute(_SETTLE, {"ids": [batch.id for batch, _ in outcomes], "now": now}).all()
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


_SETTLE = (
    update(db.send_batches)
    .where(_B.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=SUBMITTED,
        lease_until=None,
        error=None,
        changed_at=bindparam("now", type_=_B.changed_at.type),
    )
    .returning(_B.id, _B.attempts)
)


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


def split_off(
    conn: Connection,
    issue_id: int,
    batch: Claimed,
    subscriber_ids: Collection[int],
    now: datetime,
    unknown: str | None = None,
) -> Claimed:
    """Move these deliveries of ``batch`` into a batch of their own: pending (a transport
    stopped before it handed them over), or, given ``unknown`` (why), ambiguous. Returns the
    batch as it is left, smaller. Only when a send stops partway through a batch: a write
    per moved delivery."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return batch
    ambiguous = unknown is not None
    new_id = conn.execute(
        insert(db.send_batches)
        .values(
            issue_id=issue_id,
            segment=batch.segment,
            size=len(ids),
            status=AMBIGUOUS if ambiguous else PENDING,
            ambiguities=int(ambiguous),
            error=unknown,
            created_at=now,
            changed_at=now,
        )
        .returning(_B.id)
    ).scalar_one()
    moved = conn.execute(
        update(db.deliveries)
        .where(_D.batch_id == batch.id, _D.subscriber_id.in_(ids), _D.status.is_(None))
        .values(batch_id=new_id, changed_at=now)
    ).rowcount
    if moved != len(ids):
        raise RuntimeError(f"batch {batch.id}: moved {moved} deliveries of {len(ids)}")
    conn.execute(update(db.send_batches).where(_B.id == batch.id).values(size=_B.size - len(ids)))
    return Claimed(batch.id, batch.segment, batch.size - len(ids))


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


Written = Callable[[Sequence[int]], Collection[int]]
"""Of these subscribers of a batch, the ones whose message the transport has for sure (the
outbox: a whole ``.eml`` file exists). Only a transport that can tell has one."""


def expire(
    conn: Connection,
    issue_id: int,
    now: datetime,
    alive: Callable[[str], bool],
    written: Written | None = None,
) -> int:
    """Batches held by a worker that is gone: those it had handed over become ambiguous, the
    others (leased, never handed over) pending again. With ``written``, a batch handed over
    is settled by what the transport has: submitted for those, pending for the rest.

    A worker is gone when its lease has run out, or when ``alive`` says so (a dead process on
    this machine: no need to wait for its lease). Batches of live workers are left alone, so a
    worker joining a send in progress never takes over another's batch. Returns the number of
    deliveries made ambiguous."""
    held = conn.execute(
        select(_B.id, _B.segment, _B.size, _B.status, _B.worker, _B.lease_until).where(
            _B.issue_id == issue_id, _B.status.in_(LEASED)
        )
    ).all()
    total = 0
    for batch_id, segment, size, status, worker, lease_until in held:
        if lease_until is None or lease_until <= now or not alive(worker or ""):
            why = f"left in flight by {worker}; the provider may have it"
            batch = Claimed(batch_id, segment, size)
            total += _let_go(conn, issue_id, batch, status, why, now, written)
    return total


def release(
    conn: Connection,
    issue_id: int,
    worker: str,
    error: str,
    now: datetime,
    written: Written | None = None,
) -> int:
    """A worker that stops abruptly gives up its batches: each one it had handed over may have
    reached the provider, so it becomes ambiguous (its deliveries too), unless ``written``
    tells; the ones it had not are pending again. Returns the deliveries made ambiguous."""
    held = conn.execute(
        select(_B.id, _B.segment, _B.size, _B.status).where(
            _B.issue_id == issue_id, _B.status.in_(LEASED), _B.worker == worker
        )
    ).all()
    return sum(
        _let_go(conn, issue_id, Claimed(i, segment, size), status, error, now, written)
        for i, segment, size, status in held
    )


def _let_go(
    conn: Connection,
    issue_id: int,
    batch: Claimed,
    status: str,
    error: str,
    now: datetime,
    written: Written | None,
) -> int:
    if status == HANDED and written is None:
        return mark_unknown(conn, batch.id, error, now)
    if status == HANDED:
        assert written is not None
        ids = list(
            conn.execute(
                select(_D.subscriber_id).where(_D.batch_id == batch.id, _D.status.is_(None))
            ).scalars()
        )
        taken = set(written(ids))
        if taken:
            rest = [i for i in ids if i not in taken]
            settle(conn, [(split_off(conn, issue_id, batch, rest, now), {})], now)
            return 0
    conn.execute(
        update(db.send_batches)
        .where(_B.id == batch.id, _B.status.in_(LEASED))
        .values(
            status=PENDING,
            worker=None,
            lease_until=None,
            attempts=_B.attempts - 1,
            changed_at=now,
        )
    )
    return 0


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
