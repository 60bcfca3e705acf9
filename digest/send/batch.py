"""A batch as transports receive it: one variant, up to 1000 recipients with their values.

Transports that send one message per recipient (SMTP, outbox) fill the variant per recipient
with :func:`messages`; SendGrid sends the variant once with per-recipient substitutions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from digest.models import Variant
from digest.personalize import Compiled, compile_template
from digest.send.message import Envelope, Personal, build_message


@dataclass(frozen=True)
class CompiledVariant:
    """A variant split at its tokens once, filled per recipient by joining."""

    variant: Variant
    subject: Compiled
    text: Compiled
    html: Compiled

    @classmethod
    def of(cls, variant: Variant) -> CompiledVariant:
        return cls(
            variant,
            compile_template(variant.subject),
            compile_template(variant.text),
            compile_template(variant.html),
        )


@dataclass(frozen=True)
class Recipient:
    subscriber_id: int
    personal: Personal
    values: dict[str, str]
    """Every token of the variant with this recipient's value (escaped for HTML tokens)."""


@dataclass(frozen=True)
class OutgoingBatch:
    issue_id: int
    digest: str
    issue_number: int
    envelope: Envelope
    variant: CompiledVariant
    recipients: tuple[Recipient, ...]


def messages(batch: OutgoingBatch, now: datetime) -> Iterator[tuple[int, EmailMessage]]:
    """One finished MIME message per recipient."""
    v = batch.variant
    for r in batch.recipients:
        yield (
            r.subscriber_id,
            build_message(
                batch.envelope,
                r.personal,
                v.subject.fill(r.values),
                v.text.fill(r.values),
                v.html.fill(r.values),
                now,
            ),
        )
