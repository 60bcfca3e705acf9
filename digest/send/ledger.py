"""The delivery ledger: one row per (issue, subscriber), written before anything is sent.

Deliveries are grouped into batches (one variant, up to 1000 recipients) when they are
recorded. A batch is what workers claim, lease and mark; its deliveries change together when
its outcome is known, so a million-recipient send changes about a thousand batch rows and each
delivery row once.

Batch states: pending → submitting (claimed under a lease by one worker) → submitted, or
failed, or ambiguous (left ``submitting`` by a worker that died or whose lease ran out, so
nobody knows whether the provider got it). A delivery is pending until its batch's outcome is
known, then submitted, failed (with the reason: refused, no longer active) or ambiguous.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from digest import db

PENDING = "pending"
SUBMITTING = "submitting"
SUBMITTED = "submitted"
FAILED = "failed"
AMBIGUOUS = "ambiguous"

_B = db.send_batches.c
_D = db.deliveries.c


@dataclass(frozen=True)
class Claimed:
    id: int
    segment: str


@dataclass(frozen=True)
class Member:
    """A pending delivery of a claimed batch, with what sending needs of its subscriber."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    active: bool
    """Still gets email now (active, not paused): people change their minds mid-send."""


def record(
    conn: Connection,
    issue_id: int,
    batches: Iterable[tuple[str, Sequence[int]]],
    now: datetime,
) -> int:
    """Write the batches (segment, subscriber ids) and a pending delivery per subscriber.

    The caller makes sure one process records an issue (see :func:`start_recording`); the
    unique (issue, subscriber) constraint turns any slip into an error, never a duplicate."""
    batches = list(batches)
    if not batches:
        return 0
    batch_ids = conn.execute(
        insert(db.send_batches).returning(_B.id, sort_by_parameter_order=True),
        [
            {
                "issue_id": issue_id,
                "segment": segment,
                "size": len(ids),
                "status": PENDING,
                "created_at": now,
                "changed_at": now,
            }
            for segment, ids in batches
        ],
    ).scalars()
    stamp = _bound(conn, now)
    total = 0
    rows: list[tuple[Any, ...]] = []
    for batch_id, (segment, ids) in zip(batch_ids, batches, strict=True):
        rows.extend((issue_id, sid, segment, PENDING, batch_id, stamp, stamp) for sid in ids)
        if len(rows) >= INSERT_CHUNK:
            _insert_deliveries(conn, rows)
            total, rows = total + len(rows), []
    _insert_deliveries(conn, rows)
    return total + len(rows)


INSERT_CHUNK = 50_000
_DELIVERY_COLUMNS = "issue_id, subscriber_id, segment, status, batch_id, created_at, changed_at"


def _insert_deliveries(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """The one bulk write of a send: COPY on PostgreSQL, a prepared executemany on SQLite.

    Both skip SQLAlchemy's per-row parameter processing, which cost more than the write."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.driver_connection
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY deliveries ({_DELIVERY_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    conn.exec_driver_sql(
        f"INSERT INTO deliveries ({_DELIVERY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 (constant columns)
        rows,
    )


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

    On PostgreSQL the batches are picked with SELECT … FOR UPDATE SKIP LOCKED, then updated
    by id in the same transaction. (In one UPDATE … WHERE id IN (SELECT … LIMIT n SKIP
    LOCKED), PostgreSQL may run the subquery more than once and lease more than ``n``.) On
    SQLite the single UPDATE … RETURNING runs under the database's write lock."""
    pending = select(_B.id).where(_B.issue_id == issue_id, _B.status == PENDING)
    picked: Any = pending.order_by(_B.id).limit(limit)
    if conn.dialect.name == "postgresql":
        picked = list(conn.execute(picked.with_for_update(skip_locked=True)).scalars())
        if not picked:
            return []
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
        .returning(_B.id, _B.segment)
    ).all()
    return sorted((Claimed(r.id, r.segment) for r in claimed), key=lambda c: c.id)


def members(conn: Connection, batch_ids: Sequence[int], now: datetime) -> dict[int, list[Member]]:
    """The pending deliveries of the batches, with their subscribers, by batch."""
    if not batch_ids:
        return {}
    s = db.subscribers.c
    active = and_(s.status == "active", or_(s.paused_until.is_(None), s.paused_until <= now)).label(
        "active"
    )
    query = (
        select(_D.batch_id, _D.id, _D.subscriber_id, s.email, s.name, active)
        .join(db.subscribers, s.id == _D.subscriber_id)
        .where(_D.batch_id.in_(list(batch_ids)), _D.status == PENDING)
        .order_by(_D.id)
    )
    found: dict[int, list[Member]] = {}
    for batch_id, *rest in conn.execute(query):
        found.setdefault(batch_id, []).append(Member(*rest))
    return found


def settle(conn: Connection, batch_id: int, failures: Mapping[int, str], now: datetime) -> int:
    """The provider took the batch: the deliveries in ``failures`` (id → reason) failed, every
    other one is submitted. Returns how many were submitted.

    Deliveries that meanwhile became ambiguous (a lease that ran out) are submitted too: the
    answer says they were accepted."""
    by_reason: defaultdict[str, list[int]] = defaultdict(list)
    for delivery_id, reason in failures.items():
        by_reason[reason].append(delivery_id)
    for reason, ids in by_reason.items():
        conn.execute(
            update(db.deliveries)
            .where(_D.id.in_(ids))
            .values(status=FAILED, error=reason, changed_at=now)
        )
    submitted = conn.execute(
        update(db.deliveries)
        .where(_D.batch_id == batch_id, _D.status.in_((PENDING, AMBIGUOUS)))
        .values(status=SUBMITTED, changed_at=now)
    ).rowcount
    _finish(conn, batch_id, SUBMITTED if submitted or not failures else FAILED, now)
    return int(submitted)


def fail(conn: Connection, batch_id: int, error: str, now: datetime) -> int:
    """Refused or unsendable: every pending delivery of the batch failed, with the reason."""
    failed = conn.execute(
        update(db.deliveries)
        .where(_D.batch_id == batch_id, _D.status == PENDING)
        .values(status=FAILED, error=error, changed_at=now)
    ).rowcount
    _finish(conn, batch_id, FAILED, now, error)
    return int(failed)


def mark_unknown(conn: Connection, batch_id: int, error: str, now: datetime) -> int:
    """Handed over without an answer: the batch and its pending deliveries are ambiguous, and
    each delivery counts one more ambiguity (the audit of what a ``resend`` may duplicate)."""
    ambiguous = conn.execute(
        update(db.deliveries)
        .where(_D.batch_id == batch_id, _D.status == PENDING)
        .values(status=AMBIGUOUS, error=error, changed_at=now, ambiguities=_D.ambiguities + 1)
    ).rowcount
    _finish(conn, batch_id, AMBIGUOUS, now, error)
    return int(ambiguous)


def _finish(
    conn: Connection, batch_id: int, status: str, now: datetime, error: str | None = None
) -> None:
    conn.execute(
        update(db.send_batches)
        .where(_B.id == batch_id)
        .values(status=status, lease_until=None, error=error, changed_at=now)
    )


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
    """The ``resend`` policy: ambiguous batches and deliveries go back to pending (the
    deliveries keep their ambiguity count)."""
    batch_ids = select(_B.id).where(_B.issue_id == issue_id, _B.status == AMBIGUOUS)
    requeued = conn.execute(
        update(db.deliveries)
        .where(_D.batch_id.in_(batch_ids), _D.status == AMBIGUOUS)
        .values(status=PENDING, changed_at=now)
    ).rowcount
    conn.execute(
        update(db.send_batches)
        .where(_B.issue_id == issue_id, _B.status == AMBIGUOUS)
        .values(status=PENDING, changed_at=now)
    )
    return int(requeued)


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
    """How many times deliveries of the issue were found ambiguous, over every resume."""
    total = conn.execute(
        select(func.coalesce(func.sum(_D.ambiguities), 0)).where(_D.issue_id == issue_id)
    ).scalar_one()
    return int(total)


def counts(conn: Connection, issue_id: int) -> Counter[str]:
    """Deliveries per status."""
    return Counter(
        {
            status: int(n)
            for status, n in conn.execute(
                select(_D.status, func.count()).where(_D.issue_id == issue_id).group_by(_D.status)
            )
        }
    )
