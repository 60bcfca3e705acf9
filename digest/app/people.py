"""Use cases of one person on the list, for editors: find them, see what we hold on them and
what they were sent, change their topics, suppress them, export their data, and erase them on
request. The editor app's subscriber pages and ``digest subscribers find|show|topics|
suppress|export-person|erase`` call these; each owns its transaction.

Erasure forgets the address and the name everywhere the project keeps them: the subscriber
row (which stays, holding only a keyed hash of the address, :mod:`subscribers.erasure`, so the
person stays suppressed and their id is never reused), the ledger's deliveries, the events,
and the outbox's message files. What the mail provider keeps (SendGrid's activity feed and
suppression lists) is the provider's to erase.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from digest.app import feedback
from digest.app.subscribers import checked_address, erasure_hasher, topic_slugs
from digest.app.wiring import Project
from digest.errors import DigestError
from digest.send import people as ledger_people
from digest.send.outbox import files_for
from digest.send.people import Event, Sent
from subscribers.erasure import KeyWrap
from subscribers.models import Status, Subscriber
from subscribers.store import SubscriberStore

PAGE_SIZE = 50
SUPPRESSIONS = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)
"""What an editor may mark a person as, weakest first; a suppression is never softened (a
complaint does not become an unsubscription)."""


@dataclass(frozen=True)
class Found:
    people: list[Subscriber]
    next_after: int | None
    """Where the next page starts (``after``), None on the last page."""
    erased: bool = False
    """The text searched for is a whole address that was erased on request."""


@dataclass(frozen=True)
class Person:
    subscriber: Subscriber
    source: str
    created_at: datetime
    changed_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    sent: list[Sent]
    events: list[Event]
    cadences: dict[str, str] = field(default_factory=dict)
    """Digest → the cadence they chose (digests not named: its default)."""


@dataclass(frozen=True)
class Erased:
    deliveries: int
    events: int
    files: int


def find(
    project: Project,
    text: str,
    status: Status | None = None,
    topic: str | None = None,
    after: int = 0,
    limit: int = PAGE_SIZE,
) -> Found:
    """A page of the people whose address or name holds ``text`` (see
    :meth:`SubscriberStore.search`); ``topic`` is a slug or a name."""
    slug = None
    if topic:
        slug = next(iter(topic_slugs(project, topic)))
    with project.reading() as conn:
        store = SubscriberStore(conn)
        people, next_after = store.search(text, status=status, topic=slug, after=after, limit=limit)
        erased = False
        if not people and after == 0 and "@" in text:
            try:
                hasher = erasure_hasher(project, store)
            except DigestError:
                hasher = None  # no key opens (adding people says so): the search still answers
            erased = hasher is not None and bool(store.erased_among(hasher.keys(text.strip())))
    return Found(people, next_after, erased)


def person(project: Project, subscriber_id: int, history: int | None = 200) -> Person | None:
    """What we hold on one person, with the latest ``history`` issues and events (all when
    None); None when there is no such subscriber."""
    with project.reading() as conn:
        store = SubscriberStore(conn)
        row = store.row(subscriber_id)
        found = store.by_id(subscriber_id)
        if row is None or found is None:
            return None
        return Person(
            found,
            row.source,
            row.created_at,
            row.changed_at,
            row.confirmed_at,
            row.unsubscribed_at,
            ledger_people.deliveries_of(conn, subscriber_id, history),
            ledger_people.events_of(conn, subscriber_id, found.email, history),
            store.cadences_of(subscriber_id),
        )


def id_of(project: Project, email: str) -> int:
    """The id of the subscriber with this address (any case); DigestError naming it if none
    (or if it was erased on request)."""
    address = checked_address(email, "")
    with project.reading() as conn:
        store = SubscriberStore(conn)
        found = store.get(address)
        if found is None:
            hasher = erasure_hasher(project, store)
            if hasher is not None and store.erased_among(hasher.keys(address)):
                raise DigestError("was erased on request: nothing is held on it", where=email)
            raise DigestError("is not a subscriber", where=email)
    return found.id


def _existing(store: SubscriberStore, subscriber_id: int) -> Subscriber:
    found = store.by_id(subscriber_id)
    if found is None:
        raise DigestError("no such subscriber", where=str(subscriber_id))
    if found.status is Status.ERASED:
        raise DigestError("was erased on request and cannot be changed", where=str(subscriber_id))
    return found


def change_topics(project: Project, subscriber_id: int, topics: Iterable[str]) -> Subscriber:
    """Set the topics a person follows (names or slugs); at least one: someone who should
    get nothing is suppressed, not left following nothing."""
    wanted = [t for t in topics if t.strip()]
    if not wanted:
        raise DigestError(
            "choose at least one topic; to stop someone's digest, suppress them", where="topics"
        )
    slugs = topic_slugs(project, ";".join(wanted))
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        _existing(store, subscriber_id)
        store.lock(subscriber_id)
        store.set_topics(subscriber_id, slugs)
        store.update(subscriber_id, project.clock())
        changed = store.by_id(subscriber_id)
    assert changed is not None
    return changed


def suppress(project: Project, subscriber_id: int, status: Status) -> tuple[Subscriber, bool]:
    """Mark a person unsubscribed, bounced or complained (they asked by email; the address
    bounces on a transport that reports nothing back). A stronger suppression already there
    stays (False); True when the status changed."""
    if status not in SUPPRESSIONS:
        raise DigestError(
            f"a person is suppressed as one of {', '.join(s.value for s in SUPPRESSIONS)}",
            where="status",
        )
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        found = _existing(store, subscriber_id)
        if found.status in SUPPRESSIONS and SUPPRESSIONS.index(found.status) >= SUPPRESSIONS.index(
            status
        ):
            return found, False
        store.set_status_of(subscriber_id, status, project.clock())
        changed = store.by_id(subscriber_id)
    assert changed is not None
    return changed, True


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def personal_data(project: Project, subscriber_id: int) -> dict[str, Any]:
    """Everything held on one person, for their access request (GDPR art. 15) or before an
    erasure: the subscriber row, their topics, every issue recorded for them with its
    outcome, every event, and the outbox's files addressed to them."""
    found = person(project, subscriber_id, history=None)
    if found is None or found.subscriber.status is Status.ERASED:
        raise DigestError("no such subscriber", where=str(subscriber_id))
    s = found.subscriber
    names = {t.slug: t.name for t in project.topics()}
    files = files_for(project.config.outbox_dir, s.id, s.email)
    with project.reading() as conn:
        cadences = SubscriberStore(conn).cadences_of(s.id)
    return {
        "exported_at": project.clock().isoformat(),
        "controller": {
            "name": project.config.site.name,
            "postal_address": project.config.site.postal_address,
        },
        "subscriber": {
            "email": s.email,
            "name": s.name,
            "status": s.status.value,
            "topics": [{"slug": t, "name": names.get(t, t)} for t in sorted(s.topics)],
            "source": found.source,
            "created_at": _iso(found.created_at),
            "changed_at": _iso(found.changed_at),
            "confirmed_at": _iso(found.confirmed_at),
            "unsubscribed_at": _iso(found.unsubscribed_at),
            "paused_until": _iso(s.paused_until),
            "cadences": cadences,
            "time_zone": s.time_zone,
        },
        "deliveries": [
            {
                "digest": d.digest,
                "issue": d.number,
                "state": d.state,
                "email": d.email,
                "message_id": d.message_id,
                "error": d.error,
                "recorded_at": _iso(d.recorded_at),
                "changed_at": _iso(d.changed_at),
            }
            for d in found.sent
        ],
        "events": [
            {
                "event": e.kind,
                "email": e.email,
                "issue": e.issue,
                "occurred_at": _iso(e.occurred_at),
                "received_at": _iso(e.received_at),
            }
            for e in found.events
        ],
        "outbox_files": [str(p.relative_to(project.config.outbox_dir)) for p in files],
    }


def erase(project: Project, subscriber_id: int) -> Erased:
    """Forget a person on request (GDPR art. 17): see the module's docstring for where."""
    project.config.secrets.require_secret_key()
    feedback.drain(project)  # a staged event of theirs goes in first, then is forgotten
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        hasher = erasure_hasher(project, store)
        assert hasher is not None  # a secret key is set, and keys are kept or refused
        found = _existing(store, subscriber_id)
        store.lock(subscriber_id)
        forgotten = ledger_people.forget(conn, subscriber_id, found.email)
        store.erase(subscriber_id, hasher.key(found.email), project.clock())
    files = files_for(project.config.outbox_dir, subscriber_id, found.email)
    for path in files:
        path.unlink(missing_ok=True)
    return Erased(forgotten.deliveries, forgotten.events, len(files))


def forget_unopened_erasures(project: Project) -> int:
    """For a secret key lost for good: drop the erasure keys that no secret key set opens
    (how many), and with them the recognition of everyone erased under them, who may then
    be added again. Until this is run, adding or importing anyone stops with an error naming
    the previous key (:func:`digest.app.subscribers.erasure_hasher`)."""
    project.config.secrets.require_secret_key()
    wrap = KeyWrap(project.config.secrets.secret_keys())
    with project.transaction() as conn:
        dropped = SubscriberStore(conn).drop_unopened_erasure_keys(wrap)
    project.erasure_keys(again=True)
    return dropped
