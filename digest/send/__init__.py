"""send: an issue's variants → every recipient, exactly once, through a transport.

Delivery rows are written before anything is sent; batches are claimed, handed to the transport
and marked. Running again resumes: rows a dead process left ``submitting`` become ``ambiguous``
and are reported, and re-sent only when the policy says ``resend``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy import Engine

from digest import repository
from digest.errors import BatchRejected, DeliveryUnknown, TransportError
from digest.personalize import token_values
from digest.render import RenderedIssue
from digest.send import ledger
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient
from digest.send.message import Envelope, Personal, message_id
from subscribers.models import Status, Subscriber
from subscribers.segments import assign, decode_key, encode_key
from subscribers.store import SubscriberStore
from subscribers.tokens import Purpose, TokenSigner

AmbiguousPolicy = Literal["skip", "resend"]


class Transport(Protocol):
    name: str

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        """Hand the batch over; return the subscriber ids refused, with reasons.

        Raises BatchRejected when the provider refused this batch (the send goes on with the
        next), TransportError when nothing more can be sent (the send stops)."""
        ...


@dataclass(frozen=True)
class Links:
    """Builds the signed personal links of one subscriber."""

    public_url: str
    signer: TokenSigner

    def unsubscribe(self, subscriber_id: int) -> str:
        token = self.signer.sign(Purpose.UNSUBSCRIBE, subscriber_id)
        return f"{self.public_url}/unsubscribe/{token}"

    def preferences(self, subscriber_id: int) -> str:
        token = self.signer.sign(Purpose.PREFERENCES, subscriber_id)
        return f"{self.public_url}/preferences/{token}"

    def unsubscribe_topic(self, subscriber_id: int, topic: str) -> str:
        token = self.signer.sign(Purpose.UNSUBSCRIBE_TOPIC, subscriber_id, topic)
        return f"{self.public_url}/unsubscribe/topic/{token}"


@dataclass(frozen=True)
class SendReport:
    issue_id: int
    recorded: int
    submitted: int
    failed: int
    ambiguous: int
    per_segment: Counter[str]
    finished: bool


def record_recipients(engine: Engine, rendered: RenderedIssue, now: datetime) -> int:
    """Write a pending ledger row for every active subscriber with topics in this issue."""
    issue_id = rendered.issue.id
    assert issue_id is not None
    total = 0
    with engine.begin() as conn:
        store = SubscriberStore(conn)
        chunk: list[tuple[int, str]] = []
        active = store.iterate(status=Status.ACTIVE)
        for subscriber, key in assign(active, rendered.issue.topic_slugs, now):
            chunk.append((subscriber.id, encode_key(key)))
            if len(chunk) >= 1000:
                total += ledger.record(conn, issue_id, chunk, now)
                chunk = []
        total += ledger.record(conn, issue_id, chunk, now)
        repository.set_issue_status(conn, issue_id, repository.ISSUE_SENDING, now)
    return total


def send_issue(
    engine: Engine,
    rendered: RenderedIssue,
    transport: Transport,
    envelope: Envelope,
    links: Links,
    clock: Callable[[], datetime],
    *,
    batch_size: int = 1000,
    ambiguous_policy: AmbiguousPolicy = "skip",
    on_batch: Callable[[int], None] | None = None,
) -> SendReport:
    issue = rendered.issue
    assert issue.id is not None
    with engine.begin() as conn:
        head = repository.issue_row(conn, issue.id)
        ambiguous = ledger.mark_ambiguous(conn, issue.id, clock())
        if ambiguous and ambiguous_policy == "resend":
            ledger.requeue_ambiguous(conn, issue.id, clock())
    recorded = 0
    if head.status == repository.ISSUE_PLANNED:
        recorded = record_recipients(engine, rendered, clock())

    compiled: dict[str, CompiledVariant] = {}
    submitted = failed = 0
    per_segment: Counter[str] = Counter()
    for claimed in _claims(engine, issue.id, batch_size, clock):
        segment = claimed[0].segment
        if segment not in compiled:
            compiled[segment] = CompiledVariant.of(rendered.variant(decode_key(segment)))
        with engine.connect() as conn:
            found = SubscriberStore(conn).by_ids([d.subscriber_id for d in claimed])
            people = {d.id: found.get(d.subscriber_id) for d in claimed}
        recipients: list[Recipient] = []
        skipped: dict[int, str] = {}
        by_subscriber: dict[int, int] = {}
        now = clock()
        for delivery in claimed:
            person = people[delivery.id]
            if person is None or person.status is not Status.ACTIVE or person.paused(now):
                skipped[delivery.id] = "no longer active"
                continue
            by_subscriber[person.id] = delivery.id
            recipients.append(_recipient(person, compiled[segment], envelope, links, issue.id))
        batch = OutgoingBatch(
            issue.id, issue.digest, issue.number, envelope, compiled[segment], tuple(recipients)
        )
        try:
            refused = transport.deliver(batch) if recipients else {}
        except DeliveryUnknown as err:
            with engine.begin() as conn:
                ledger.mark_unknown(conn, [d.id for d in claimed], clock(), str(err))
            ambiguous += len(claimed)
            continue
        except BatchRejected as err:
            refused = {r.subscriber_id: str(err) for r in recipients}
        except TransportError as err:
            with engine.begin() as conn:
                ledger.mark(conn, [d.id for d in claimed], ledger.FAILED, clock(), str(err))
            raise
        refused_ids = {by_subscriber[s]: reason for s, reason in refused.items()}
        ok = [d.id for d in claimed if d.id not in skipped and d.id not in refused_ids]
        with engine.begin() as conn:
            ledger.mark(conn, ok, ledger.SUBMITTED, clock())
            for delivery_id, reason in {**skipped, **refused_ids}.items():
                ledger.mark(conn, [delivery_id], ledger.FAILED, clock(), reason)
        submitted += len(ok)
        failed += len(skipped) + len(refused_ids)
        per_segment[segment] += len(ok)
        if on_batch is not None:
            on_batch(len(claimed))
    with engine.begin() as conn:
        remaining = ledger.counts(conn, issue.id)
        finished = remaining[ledger.PENDING] == 0 and remaining[ledger.SUBMITTING] == 0
        if finished:
            repository.set_issue_status(conn, issue.id, repository.ISSUE_SENT, clock())
    return SendReport(issue.id, recorded, submitted, failed, ambiguous, per_segment, finished)


def _claims(
    engine: Engine, issue_id: int, batch_size: int, clock: Callable[[], datetime]
) -> Iterator[list[ledger.Delivery]]:
    while True:
        with engine.begin() as conn:
            claimed = ledger.claim(conn, issue_id, batch_size, uuid.uuid4().hex, clock())
        if not claimed:
            return
        yield claimed


def _recipient(
    person: Subscriber,
    variant: CompiledVariant,
    envelope: Envelope,
    links: Links,
    issue_id: int,
) -> Recipient:
    unsubscribe = links.unsubscribe(person.id)
    values = token_values(
        {
            "first_name": person.first_name or "there",
            "email": person.email,
            "unsubscribe_url": unsubscribe,
            "preferences_url": links.preferences(person.id),
        },
        {slug: links.unsubscribe_topic(person.id, slug) for slug in sorted(variant.variant.key)},
    )
    personal = Personal(
        email=person.email,
        name=person.name,
        unsubscribe_url=unsubscribe,
        message_id=message_id(issue_id, person.id, envelope.from_email),
    )
    return Recipient(person.id, personal, values)
