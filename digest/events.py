"""events: SendGrid's signed Event Webhook → the raw events, their rollups and the suppression
list.

The signature (ECDSA P-256 over timestamp + raw body) is checked with ``cryptography``; a stale
timestamp is refused too, so a captured request cannot be replayed later. A batch applies in
bulk: the rows go in with the database's own conflict handling on ``sg_event_id``, and only the
rows that were new add to the rollups and suppress readers, so a replayed batch, or one that
overlaps another, changes nothing twice. The webhook's batches are staged first and applied
many at once (:func:`apply_staged`); the bounce mailbox and tests apply events directly
(:func:`apply_events`), by the same rules.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection

from digest.stores import engagement
from digest.stores.engagement import EventRow
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


UNIQUE_KINDS = ("open", "click")
"""Kinds counted once per reader too (``unique_open``, ``unique_click``)."""
MAX_ID = 2**31 - 1
"""Issue and subscriber ids are 32-bit integers in both databases."""
DEFAULT_KEEP_DAYS = 30

LinkMatcher = Callable[[int, str], int | None]
"""(issue id, a click's URL) → the id of the issue's post the URL links to, if any."""


@lru_cache(maxsize=8)
def _public_key(public_key: str) -> ec.EllipticCurvePublicKey | None:
    try:
        key = serialization.load_der_public_key(base64.b64decode(public_key, validate=True))
    except (ValueError, TypeError, binascii.Error):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return None
    return key


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
    key = _public_key(public_key)
    if key is None:
        return False
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, timestamp.encode() + raw_body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


@dataclass(frozen=True)
class EventReport:
    applied: Counter[str]
    duplicates: int
    suppressed: int
    ignored: int
    addresses: frozenset[str] = frozenset()
    """The addresses of the new events (of a drain: an erased reader's must be blanked)."""


def parse(raw_body: bytes) -> list[Mapping[str, Any]]:
    try:
        document = orjson.loads(raw_body)
    except orjson.JSONDecodeError as problem:
        raise ValueError(f"not JSON ({problem})") from None
    if not isinstance(document, list):
        raise ValueError("expected a JSON array of events")
    return [e for e in document if isinstance(e, Mapping)]


def _id(value: Any) -> int | None:
    """An issue or subscriber id from custom_args (a string or a number), if it is one."""
    if type(value) is str:
        if not (value.isdigit() and value.isascii() and len(value) < 11):
            return None
        number = int(value)
    elif type(value) is int:
        number = value
    else:
        return None
    return number if 0 < number <= MAX_ID else None


EARLIEST, LATEST = 0, 253402300799
"""The Unix seconds a stored timestamp may hold (1970 to the end of year 9999)."""


def _seconds(value: Any, otherwise: int) -> int:
    """Unix seconds from a float or a string of them; ``otherwise`` when impossible."""
    try:
        seconds = int(float(value)) if type(value) in (str, float) else otherwise
    except (ValueError, OverflowError):
        return otherwise
    return seconds if EARLIEST <= seconds <= LATEST else otherwise


@dataclass
class Batch:
    """One batch's events as rows, once each by ``sg_event_id``; what was left out."""

    rows: list[EventRow]
    ignored: int
    repeated: int


def prepare(
    events: Iterable[Mapping[str, Any]], now: datetime, stamp: Callable[[datetime], Any]
) -> Batch:
    """The events worth keeping as rows (a known kind, an id and an address that fit their
    columns); ``stamp`` turns the time they came into what the driver takes. A missing or
    impossible event time is taken as now."""
    received = stamp(now)
    now_seconds = int(now.timestamp())
    counted = COUNTED
    rows: dict[str, EventRow] = {}
    ignored = repeated = 0
    for event in events:
        kind = event.get("event")
        event_id = event.get("sg_event_id")
        email = event.get("email")
        if (
            kind not in counted
            or type(event_id) is not str
            or type(email) is not str
            or not 0 < len(event_id) <= 200
            or not 0 < len(email) <= 320
        ):
            ignored += 1
            continue
        if event_id in rows:
            repeated += 1
            continue
        occurred = event.get("timestamp")
        if type(occurred) is not int or not EARLIEST <= occurred <= LATEST:
            occurred = _seconds(occurred, now_seconds)
        url = None
        if kind == "click":
            url = event.get("url")
            if type(url) is not str:
                url = None
        elif kind == "bounce" and event.get("type") == "blocked":
            kind = "bounce_blocked"  # a block is temporary: the address is not known to be bad
        rows[event_id] = (
            event_id,
            kind,
            email,
            _id(event.get("issue_id")),
            _id(event.get("subscriber_id")),
            occurred,
            received,
            url,
            None,
        )
    return Batch(list(rows.values()), ignored, repeated)


def apply_events(
    conn: Connection,
    events: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    keep_days: int = DEFAULT_KEEP_DAYS,
    link_of: LinkMatcher | None = None,
) -> EventReport:
    """Record each new event, add the new ones to the rollups, and let bounces, drops, spam
    reports and unsubscribes suppress their reader (a complaint is never softened into
    anything else). ``link_of`` matches clicks to the issue's posts."""
    batch = prepare(events, now, engagement.time_binder(conn))
    rows = batch.rows
    if link_of is not None:
        rows = [
            (*row[:8], link_of(row[3], row[7])) if row[7] and row[3] is not None else row
            for row in rows
        ]
    inserted = engagement.insert_new_events(conn, rows)
    new = [row for row in rows if row[0] in inserted]
    applied, suppressed = _take_effect(conn, new, now, keep_days)
    duplicates = len(rows) - len(new) + batch.repeated
    return EventReport(applied, duplicates, suppressed, batch.ignored)


def apply_staged(
    conn: Connection,
    batches: Sequence[engagement.StagedBatch],
    now: datetime,
    *,
    keep_days: int = DEFAULT_KEEP_DAYS,
    link_of: LinkMatcher | None = None,
) -> EventReport:
    """:func:`apply_events` for staged batches (their rows prepared when staged), all in one
    insert; ``duplicates`` counts the rows not new, repeats across the batches included."""
    new = engagement.insert_staged(conn, batches, link_of)
    applied, suppressed = _take_effect(conn, new, now, keep_days)
    staged = sum(batch.events for batch in batches)
    addresses = frozenset(row[2] for row in new)
    return EventReport(applied, staged - len(new), suppressed, 0, addresses)


def _take_effect(
    conn: Connection, new: list[EventRow], now: datetime, keep_days: int
) -> tuple[Counter[str], int]:
    """What the new events do, whichever way they came: suppress their readers, then add to
    the rollups. The events applied per kind, and the readers suppressed."""
    suppressed = _suppress(conn, new, now)
    # Last: every batch adds to the same few rollup rows, whose locks are held to the commit.
    _roll_up(conn, new, now, keep_days)
    applied = Counter("bounce" if row[1] == "bounce_blocked" else row[1] for row in new)
    return applied, suppressed


def _roll_up(conn: Connection, new: list[EventRow], now: datetime, keep_days: int) -> None:
    counts: Counter[tuple[int, str]] = Counter()
    clicks: Counter[tuple[int, int]] = Counter()
    readers: Counter[tuple[int, int]] = Counter()
    engaged: list[tuple[int, str, str]] = []
    clickers: list[tuple[int, int, str]] = []
    for _, kind, email, issue, _, _, _, _, post in new:
        if issue is None:
            continue
        counts[issue, kind] += 1
        if kind in UNIQUE_KINDS:
            key = email_key(email)
            engaged.append((issue, kind, key))
            if post is not None:
                clicks[issue, post] += 1
                clickers.append((issue, post, key))
    if engaged:
        # Readers are remembered while the issue is recent; after that its unique figures
        # are final (see prune), so a late open cannot count a reader twice.
        cutoff = now - timedelta(days=keep_days)
        sent = engagement.sent_times(conn, {issue for issue, _, _ in engaged})
        recent = {i for i, at in sent.items() if at is None or at >= cutoff}
        firsts = engagement.add_firsts(conn, (e for e in engaged if e[0] in recent))
        for (issue, kind), n in firsts.items():
            counts[issue, f"unique_{kind}"] += n
        readers = engagement.add_post_firsts(conn, (c for c in clickers if c[0] in recent))
    engagement.add_counts(conn, counts)
    engagement.add_post_clicks(conn, clicks, readers)


def _suppress(conn: Connection, new: list[EventRow], now: datetime) -> int:
    """Apply the new suppressing events in their batch order, in bulk: one read of the readers
    they name, one update per resulting status."""
    acting = [row for row in new if row[1] in SUPPRESSING]
    if not acting:
        return 0
    found = engagement.readers(
        conn, (row[4] for row in acting if row[4] is not None), (email_key(r[2]) for r in acting)
    )
    by_id = {reader.id: reader for reader in found}
    by_key = {reader.email_key: reader for reader in found}
    status = {reader.id: Status(reader.status) for reader in found}
    changed: dict[int, Status] = {}
    for _, kind, email, _, claimed, _, _, _, _ in acting:
        key = email_key(email)
        reader = by_id.get(claimed) if claimed is not None else None
        if reader is None or reader.email_key != key:
            reader = by_key.get(key)
        if reader is None:
            continue
        target = SUPPRESSING[kind]
        if status[reader.id] not in (Status.COMPLAINED, target):
            status[reader.id] = changed[reader.id] = target
    store = SubscriberStore(conn)
    for target in sorted(set(changed.values())):
        store.set_status_of_many(sorted(i for i, s in changed.items() if s is target), target, now)
    return len(changed)


@dataclass(frozen=True)
class Pruned:
    events: int
    readers: int
    """Remembered openers and clickers forgotten, of issues whose figures are now final."""


def prune(conn: Connection, now: datetime, keep_days: int, limit: int | None = None) -> Pruned:
    """Delete the raw events older than ``keep_days`` (at most ``limit``), and forget who
    opened or clicked the issues sent before then. The rollups stay."""
    cutoff = now - timedelta(days=keep_days)
    events = engagement.prune_events(conn, cutoff, limit)
    readers = engagement.forget_firsts(conn, engagement.closed_issues(conn, cutoff))
    return Pruned(events, readers)


def issue_counts(conn: Connection, issue_id: int) -> Counter[str]:
    """Events per kind for one issue (delivered, open, click, bounce, …, and the readers who
    opened or clicked: unique_open, unique_click), from the rollups."""
    counted = engagement.counts(conn, [issue_id])[issue_id]
    blocked = counted.pop("bounce_blocked", 0)
    if blocked:
        counted["bounce"] += blocked
    return counted
