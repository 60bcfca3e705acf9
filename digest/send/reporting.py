"""What the ledger (:mod:`digest.send.ledger`) says of an issue's send: batches still open,
recipients per segment, deliveries per state, and the audit of ambiguities."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from digest import db
from digest.send.ledger import AMBIGUOUS, FAILED, PENDING, STATE, SUBMITTING

_B = db.send_batches.c
_D = db.deliveries.c


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


@dataclass(frozen=True)
class BatchLine:
    """One batch as the ledger view shows it: why it is ambiguous or failed, and since when."""

    id: int
    segment: str
    size: int
    status: str
    ambiguities: int
    error: str | None
    changed_at: datetime


@dataclass(frozen=True)
class LedgerView:
    """An issue's ledger for people: deliveries per state, the batches whose fate is unknown
    or that failed (with the reason), and the failed deliveries' reasons."""

    counts: Counter[str]
    batches: list[BatchLine]
    failure_reasons: Counter[str]
    failed_recipients: list[tuple[str, str]]
    """(address, reason) of failed deliveries, the first ``limit`` of them."""


_REASON = func.coalesce(_D.error, _B.error, "")
"""Why a failed delivery failed: its own outcome's reason, else its batch's."""
_DELIVERIES = db.deliveries.join(db.send_batches, _B.id == _D.batch_id)


def failure_reasons(conn: Connection, issue_id: int) -> Counter[str]:
    """Why deliveries of the issue failed, with how many each reason cost."""
    query = (
        select(_REASON, func.count())
        .select_from(_DELIVERIES)
        .where(_D.issue_id == issue_id, STATE == FAILED)
        .group_by(_REASON)
    )
    return Counter({str(text): int(n) for text, n in conn.execute(query)})


def ledger_view(conn: Connection, issue_id: int, limit: int = 50) -> LedgerView:
    batches = [
        BatchLine(**row._mapping)
        for row in conn.execute(
            select(_B.id, _B.segment, _B.size, _B.status, _B.ambiguities, _B.error, _B.changed_at)
            .where(_B.issue_id == issue_id, _B.status.in_((AMBIGUOUS, FAILED)))
            .order_by(_B.id)
        )
    ]
    recipients = [
        (str(email), str(text))
        for email, text in conn.execute(
            select(_D.email, _REASON)
            .select_from(_DELIVERIES)
            .where(_D.issue_id == issue_id, STATE == FAILED)
            .order_by(_D.email)
            .limit(limit)
        )
    ]
    return LedgerView(counts(conn, issue_id), batches, failure_reasons(conn, issue_id), recipients)


def delivery_address(conn: Connection, issue_id: int, subscriber_id: int) -> str | None:
    """The address the delivery was recorded for (and so sent to), or None when the issue
    has no delivery to that subscriber."""
    found = conn.execute(
        select(db.deliveries.c.email).where(
            db.deliveries.c.issue_id == issue_id, db.deliveries.c.subscriber_id == subscriber_id
        )
    ).scalar_one_or_none()
    return str(found) if found else None
