"""What the ledger (:mod:`digest.send.ledger`) says of an issue's send: batches still open,
recipients per segment, deliveries per state, and the audit of ambiguities."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Connection, func, select

from digest import db
from digest.send.ledger import PENDING, STATE, SUBMITTING

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
