"""A batch as transports receive it: one variant, up to 1000 recipients with their values.

Transports that send one message per recipient (SMTP, outbox) fill the variant per recipient
with :func:`messages`; SendGrid sends the variant once with per-recipient substitutions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.errors import MessageError
from email.message import EmailMessage
from functools import cached_property
from typing import NamedTuple

from digest.models import Variant
from digest.personalize import Compiled, bind_links, compile_template, recipient_values
from digest.send.message import Envelope, Personal, build_message, message_id


@dataclass(frozen=True)
class CompiledVariant:
    """A variant with its links bound to the public URL (:func:`bind_links`): as text for
    providers that substitute (SendGrid), and split at its tokens for filling per recipient
    (worked out on first use: only transports that build each message themselves need it,
    and a send of many small segments compiles thousands of variants)."""

    variant: Variant
    bound_subject: str
    bound_text: str
    bound_html: str

    @classmethod
    def of(cls, variant: Variant, public_url: str) -> CompiledVariant:
        subject, text, html = (
            bind_links(part, public_url) for part in (variant.subject, variant.text, variant.html)
        )
        return cls(variant, subject, text, html)

    @cached_property
    def subject(self) -> Compiled:
        return compile_template(self.bound_subject)

    @cached_property
    def text(self) -> Compiled:
        return compile_template(self.bound_text)

    @cached_property
    def html(self) -> Compiled:
        return compile_template(self.bound_html)


class Recipient(NamedTuple):
    """What one reader's email needs beyond the variant; everything else derives from it
    (built once per recipient of every send: a tuple, and no more than that)."""

    subscriber_id: int
    email: str
    name: str
    first_name: str
    """For the greeting: "there" when the name is unknown."""
    token: str
    """The signed manage token all the email's links carry."""

    def values(self) -> dict[str, str]:
        return recipient_values(self.first_name, self.email, self.token)


@dataclass(frozen=True)
class OutgoingBatch:
    issue_id: int
    digest: str
    issue_number: int
    envelope: Envelope
    variant: CompiledVariant
    recipients: tuple[Recipient, ...]
    public_url: str
    """Where the links lead (``bind_links`` put it into the variant)."""

    def unsubscribe_url(self, recipient: Recipient) -> str:
        return f"{self.public_url}/unsubscribe/{recipient.token}"

    def personal(self, recipient: Recipient) -> Personal:
        return Personal(
            recipient.email,
            recipient.name,
            self.unsubscribe_url(recipient),
            message_id(
                self.issue_id,
                recipient.subscriber_id,
                self.envelope.from_email,
                self.envelope.message_key,
            ),
        )


def messages(
    batch: OutgoingBatch, now: datetime
) -> tuple[list[tuple[int, EmailMessage]], dict[int, str]]:
    """One finished MIME message per recipient, and the recipients whose message cannot be
    built (an address stored before today's checks, say), with why: they fail alone, and the
    rest of the batch goes out."""
    v = batch.variant
    built: list[tuple[int, EmailMessage]] = []
    failed: dict[int, str] = {}
    for r in batch.recipients:
        values = r.values()
        try:
            message = build_message(
                batch.envelope,
                batch.personal(r),
                v.subject.fill(values),
                v.text.fill(values),
                v.html.fill(values),
                now,
            )
        except (ValueError, MessageError) as err:
            failed[r.subscriber_id] = f"cannot build the message: {err}"
            continue
        built.append((r.subscriber_id, message))
    return built, failed


def plan_batches(
    segments: Iterable[tuple[str, int, int]], batch_size: int
) -> list[tuple[str, int, int]]:
    """Segments as (key, first place, recipients), each a run of consecutive places → batches
    of one segment and at most ``batch_size``, as (key, first place, size), in the same order.

    A batch is a run of places too: every recipient of a segment in exactly one batch, and
    every batch but a segment's last full."""
    return [
        (key, start, min(batch_size, first + n - start))
        for key, first, n in segments
        for start in range(first, first + n, batch_size)
    ]
