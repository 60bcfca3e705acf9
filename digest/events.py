"""events: SendGrid's signed Event Webhook → the ledger's events and the suppression list.

The signature (ECDSA P-256 over timestamp + raw body) is checked with SendGrid's own helper;
a stale timestamp is refused too, so a captured request cannot be replayed later. Events apply
once each, by ``sg_event_id``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy import Connection, func, insert, select

from digest import db
from subscribers.importer import email_key
from subscribers.models import Status
from subscribers.store import SubscriberStore

SUPPRESSING = {
    "bounce": Status.BOUNCED,
    "dropped": Status.BOUNCED,
    "spamreport": Status.COMPLAINED,
    "unsubscribe": Status.UNSUBSCRIBED,
    "group_unsubscribe": Status.UNSUBSCRIBED,
}
COUNTED = {
    "processed",
    "delivered",
    "open",
    "click",
    "deferred",
    "bounce",
    "dropped",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
}


def signature_valid(
    raw_body: bytes,
    signature: str | None,
    timestamp: str | None,
    public_key: str,
    now: datetime,
    tolerance: timedelta,
) -> bool:
    """True when SendGrid signed exactly these bytes at a moment within ``tolerance`` of now."""
    if not signature or not timestamp or not (timestamp.isascii() and timestamp.isdigit()):
        return False  # isdigit alone passes "²" and "١", which int() then refuses
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (OverflowError, OSError, ValueError):  # beyond the years a datetime can hold
        return False
    if abs(now - signed_at) > tolerance:
        return False
    helper = EventWebhook()
    try:
        key = helper.convert_public_key_to_ecdsa(public_key)
        return bool(helper.verify_signature(raw_body.decode("utf-8"), signature, timestamp, key))
    except (ValueError, TypeError, UnicodeDecodeError):
        return False


@dataclass(frozen=True)
class EventReport:
    applied: Counter[str]
    duplicates: int
    suppressed: int
    ignored: int


def parse(raw_body: bytes) -> list[Mapping[str, Any]]:
    document = json.loads(raw_body)
    if not isinstance(document, list):
        raise ValueError("expected a JSON array of events")
    return [e for e in document if isinstance(e, Mapping)]


def _moment(value: Any, now: datetime) -> datetime:
    """An event's Unix timestamp; a missing or impossible one is taken as now."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return now


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def apply_events(
    conn: Connection, events: Iterable[Mapping[str, Any]], now: datetime
) -> EventReport:
    """Record each new event; bounces, drops, spam reports and unsubscribes suppress the
    subscriber (a complaint is never softened into anything else)."""
    store = SubscriberStore(conn)
    applied: Counter[str] = Counter()
    duplicates = suppressed = ignored = 0
    for event in events:
        kind = str(event.get("event", ""))
        event_id = str(event.get("sg_event_id") or "")
        email = str(event.get("email") or "")
        if not event_id or not email or kind not in COUNTED:
            ignored += 1
            continue
        seen = conn.execute(
            select(db.events.c.sg_event_id).where(db.events.c.sg_event_id == event_id)
        ).first()
        if seen:
            duplicates += 1
            continue
        subscriber_id = _int(event.get("subscriber_id"))
        subscriber = store.by_id(subscriber_id) if subscriber_id else None
        if subscriber is None or email_key(subscriber.email) != email_key(email):
            subscriber = store.get(email)
        occurred = _moment(event.get("timestamp"), now)
        conn.execute(
            insert(db.events).values(
                sg_event_id=event_id,
                event=kind,
                email=email,
                issue_id=_int(event.get("issue_id")),
                subscriber_id=subscriber.id if subscriber else None,
                occurred_at=occurred,
                received_at=now,
            )
        )
        applied[kind] += 1
        status = SUPPRESSING.get(kind)
        if kind == "bounce" and str(event.get("type", "bounce")) == "blocked":
            status = None  # a block is temporary: the address is not known to be bad
        if subscriber and status and subscriber.status not in (Status.COMPLAINED, status):
            store.set_status_of(subscriber.id, status, now)
            suppressed += 1
    return EventReport(applied, duplicates, suppressed, ignored)


def issue_counts(conn: Connection, issue_id: int) -> Counter[str]:
    """Events per kind for one issue (delivered, open, click, bounce, …)."""
    rows = conn.execute(
        select(db.events.c.event, func.count())
        .where(db.events.c.issue_id == issue_id)
        .group_by(db.events.c.event)
    )
    return Counter({kind: int(n) for kind, n in rows})
