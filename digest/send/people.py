"""One reader in the ledger and the events: what they were sent, what came back, and the
erasure of their address and name from both.

The subscriber list (:mod:`subscribers.store`) holds the person; the ledger keeps, per
delivery, the address and name the issue was recorded for (sending reads them there), and
the events keep the address the provider reported. An erasure must reach all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, case, delete, func, or_, select, update

from digest import db
from digest.send.ledger import STATE

ERASED_ERROR = "(erased on request)"


@dataclass(frozen=True)
class Sent:
    """One issue as one reader got it (or did not)."""

    digest: str
    number: int
    state: str
    email: str
    message_id: str | None
    error: str | None
    recorded_at: datetime
    changed_at: datetime


@dataclass(frozen=True)
class Event:
    kind: str
    email: str
    issue: str | None
    """``digest #number``, when the event names an issue we know."""
    occurred_at: datetime
    received_at: datetime


def deliveries_of(conn: Connection, subscriber_id: int, limit: int | None = 200) -> list[Sent]:
    """The latest ``limit`` issues recorded for ``subscriber_id`` (all when None), newest
    first."""
    d, b, i = db.deliveries, db.send_batches, db.issues
    rows = conn.execute(
        select(
            i.c.digest,
            i.c.number,
            STATE.label("state"),
            d.c.email,
            d.c.message_id,
            d.c.error,
            d.c.created_at,
            d.c.changed_at,
        )
        .select_from(d)
        .join(i, i.c.id == d.c.issue_id)
        .outerjoin(b, b.c.id == d.c.batch_id)
        .where(d.c.subscriber_id == subscriber_id)
        .order_by(d.c.issue_id.desc())
        .limit(limit)
    )
    return [
        Sent(
            r.digest,
            r.number,
            r.state or "",
            r.email,
            r.message_id,
            r.error,
            r.created_at,
            r.changed_at,
        )
        for r in rows
    ]


def events_of(
    conn: Connection, subscriber_id: int, address: str, limit: int | None = 200
) -> list[Event]:
    """The latest ``limit`` events of ``subscriber_id``, or reported for ``address`` without
    naming a subscriber, newest first."""
    e, i = db.events, db.issues
    who = e.c.subscriber_id == subscriber_id
    if address:
        who = or_(who, (e.c.subscriber_id.is_(None)) & (func.lower(e.c.email) == address.lower()))
    rows = conn.execute(
        select(e.c.event, e.c.email, e.c.occurred_at, e.c.received_at, i.c.digest, i.c.number)
        .outerjoin(i, i.c.id == e.c.issue_id)
        .where(who)
        .order_by(e.c.occurred_at.desc())
        .limit(limit)
    )
    return [
        Event(
            r.event,
            r.email,
            f"{r.digest} #{r.number}" if r.digest else None,
            r.occurred_at,
            r.received_at,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Forgotten:
    deliveries: int
    events: int


def forget(conn: Connection, subscriber_id: int, address: str) -> Forgotten:
    """Blank the address and name in every delivery of ``subscriber_id`` and the address in
    every event of it or of ``address``. The rows stay: the issues' figures (sent, failed,
    opened) must not change because one reader left. Error texts are blanked too: a
    provider's refusal quotes the address it refused. Who opened or clicked what is forgotten
    for every address the reader's events name."""
    d, e = db.deliveries, db.events
    named = conn.execute(select(e.c.email).where(e.c.subscriber_id == subscriber_id).distinct())
    _forget_firsts(conn, {address, *named.scalars()})
    deliveries = conn.execute(
        update(d)
        .where(d.c.subscriber_id == subscriber_id)
        .values(email="", name="", error=case((d.c.error.is_not(None), ERASED_ERROR), else_=None))
    ).rowcount
    events = conn.execute(
        update(e)
        .where(or_(e.c.subscriber_id == subscriber_id, func.lower(e.c.email) == address.lower()))
        .values(email="", subscriber_id=subscriber_id)
    ).rowcount
    return Forgotten(deliveries, events)


def forget_events(conn: Connection, address: str) -> int:
    """Blank ``address`` in the events that hold it (any case), and forget it among the
    readers who opened or clicked an issue or a post (the rollups' counts already hold them);
    how many events."""
    e = db.events
    _forget_firsts(conn, {address})
    return int(
        conn.execute(
            update(e).where(func.lower(e.c.email) == address.lower()).values(email="")
        ).rowcount
    )


def _forget_firsts(conn: Connection, addresses: set[str]) -> None:
    """Forget these addresses among the readers who opened or clicked an issue or a post."""
    keys = sorted({a.lower() for a in addresses if a})
    if keys:
        for firsts in (db.event_firsts, db.event_post_firsts):
            conn.execute(delete(firsts).where(firsts.c.recipient.in_(keys)))
