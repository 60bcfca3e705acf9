"""What the send stage asks of a transport (SendGrid, SMTP, outbox): batches of an issue, and
single messages (confirmation requests, approval requests), each with the same errors."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from typing import Protocol

from digest.send.batch import OutgoingBatch


class Transport(Protocol):
    """Every method raises a :class:`digest.errors.TransportError` when it hands nothing
    over: BatchRejected when the provider refused this batch or message (a send goes on with
    the next batch), DeliveryUnknown when it was handed over without an answer, ProviderDown
    when nothing more can be sent (a send stops)."""

    name: str
    concurrent: bool
    """Whether ``deliver`` may run in several threads at once."""

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        """Hand the batch over; return the subscriber ids refused, with reasons."""
        ...

    def send_message(self, message: EmailMessage) -> None:
        """Hand one finished message over, outside any issue's ledger."""
        ...
