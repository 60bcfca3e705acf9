"""The delivery ledger: one row per (issue, subscriber), written before anything is sent.

States: pending → submitting → submitted, or failed, or ambiguous (left ``submitting`` by a
process that died, so nobody knows whether the provider got it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from digest import db


@dataclass(frozen=True)
class Delivery:
    id: int
    subscriber_id: int
    segment: str


PENDING = "pending"
SUBMITTING = "submitting"
SUBMITTED = "submitted"
FAILED = "failed"
AMBIGUOUS = "ambiguous"


def record(
    conn: Connection, issue_id: int, assignments: Iterable[tuple[int, str]], now: datetime
) -> int:
    """Add a pending row per (subscriber id, segment) not in the ledger yet; returns how many.

    Several workers may record at once: rows another one wrote first are skipped by the
    database (ON CONFLICT DO NOTHING on the unique (issue, subscriber)), never duplicated."""
    rows = [
        {
            "issue_id": issue_id,
            "subscriber_id": subscriber_id,
            "segment": segment,
            "status": PENDING,
            "created_at": now,
            "changed_at": now,
        }
        for subscriber_id, segment in assignments
    ]
    if not rows:
        return 0
    dialect = conn.dialect.name
    statement: Any
    if dialect == "postgresql":
        statement = pg_insert(db.deliveries).on_conflict_do_nothing(
            index_elements=["issue_id", "subscriber_id"]
        )
    elif dialect == "sqlite":
        statement = sqlite_insert(db.deliveries).on_conflict_do_nothing(
            index_elements=["issue_id", "subscriber_id"]
        )
    else:  # pragma: no cover - the project supports SQLite and PostgreSQL
        statement = insert(db.deliveries)
    return int(conn.execute(statement, rows).rowcount or 0)


def mark_ambiguous(conn: Connection, issue_id: int, now: datetime) -> int:
    """Rows a dead process left ``submitting``: it may or may not have handed them over."""
    return int(
        conn.execute(
            update(db.deliveries)
            .where(db.deliveries.c.issue_id == issue_id, db.deliveries.c.status == SUBMITTING)
            .values(status=AMBIGUOUS, changed_at=now, ambiguities=db.deliveries.c.ambiguities + 1)
        ).rowcount
    )


def requeue_ambiguous(conn: Connection, issue_id: int, now: datetime) -> int:
    """The ``resend`` policy: ambiguous rows go back to pending (their count stays)."""
    return int(
        conn.execute(
            update(db.deliveries)
            .where(db.deliveries.c.issue_id == issue_id, db.deliveries.c.status == AMBIGUOUS)
            .values(status=PENDING, changed_at=now)
        ).rowcount
    )


def claim(
    conn: Connection, issue_id: int, limit: int, batch_id: str, now: datetime
) -> list[Delivery]:
    """Mark up to ``limit`` pending rows of one segment as ``submitting`` under ``batch_id``.

    One UPDATE … WHERE id IN (SELECT …) RETURNING statement, so two workers can never claim
    the same row: on PostgreSQL the SELECTs skip rows another transaction has locked
    (FOR UPDATE SKIP LOCKED); on SQLite the statement runs under the database's write lock
    and sees what the previous writer committed.
    """
    pending = (db.deliveries.c.issue_id == issue_id) & (db.deliveries.c.status == PENDING)
    postgres = conn.dialect.name == "postgresql"
    segment = (
        select(db.deliveries.c.segment).where(pending).order_by(db.deliveries.c.segment).limit(1)
    )
    if postgres:
        segment = segment.with_for_update(skip_locked=True)
    ids = (
        select(db.deliveries.c.id)
        .where(pending, db.deliveries.c.segment == segment.scalar_subquery())
        .order_by(db.deliveries.c.id)
        .limit(limit)
    )
    if postgres:
        ids = ids.with_for_update(skip_locked=True)
    claimed = conn.execute(
        update(db.deliveries)
        .where(db.deliveries.c.id.in_(ids), db.deliveries.c.status == PENDING)
        .values(status=SUBMITTING, batch=batch_id, changed_at=now)
        .returning(db.deliveries.c.id, db.deliveries.c.subscriber_id, db.deliveries.c.segment)
    ).all()
    return sorted((Delivery(r.id, r.subscriber_id, r.segment) for r in claimed), key=lambda d: d.id)


def mark_unknown(conn: Connection, delivery_ids: Sequence[int], now: datetime, error: str) -> None:
    """Sent without an answer: ambiguous, and counted as such."""
    if delivery_ids:
        conn.execute(
            update(db.deliveries)
            .where(db.deliveries.c.id.in_(list(delivery_ids)))
            .values(
                status=AMBIGUOUS,
                changed_at=now,
                error=error,
                ambiguities=db.deliveries.c.ambiguities + 1,
            )
        )


def mark(
    conn: Connection,
    delivery_ids: Sequence[int],
    status: str,
    now: datetime,
    error: str | None = None,
) -> None:
    if delivery_ids:
        conn.execute(
            update(db.deliveries)
            .where(db.deliveries.c.id.in_(list(delivery_ids)))
            .values(status=status, changed_at=now, error=error)
        )


def ambiguities(conn: Connection, issue_id: int) -> int:
    """How many times deliveries of the issue were found ambiguous, over every resume."""
    total = conn.execute(
        select(func.coalesce(func.sum(db.deliveries.c.ambiguities), 0)).where(
            db.deliveries.c.issue_id == issue_id
        )
    ).scalar_one()
    return int(total)


def counts(conn: Connection, issue_id: int) -> Counter[str]:
    return Counter(
        {
            status: int(n)
            for status, n in conn.execute(
                select(db.deliveries.c.status, func.count())
                .where(db.deliveries.c.issue_id == issue_id)
                .group_by(db.deliveries.c.status)
            )
        }
    )
