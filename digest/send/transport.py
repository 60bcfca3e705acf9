"""What the send stage asks of a transport (SendGrid, SMTP, outbox): batches of an issue, and
single messages (confirmation requests, approval requests), each with the same errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from email.message import EmailMessage
from typing import Protocol

from digest.errors import BatchRejected, ProviderDown
from digest.send.batch import OutgoingBatch, messages


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


class MessageWriter(ABC):
    """A transport that hands over one finished message at a time (outbox, SMTP): a batch is
    its recipients' messages, and a recipient whose message cannot be built or is refused
    fails alone, with the reason, while the rest go out."""

    clock: Callable[[], datetime]
    refusal: tuple[str, str]
    """How a refused single message is reported: (prefix of the reason, ``where``)."""

    @abstractmethod
    def write(self, items: Sequence[tuple[int, EmailMessage]]) -> Mapping[int, str]:
        """Hand each (subscriber id, message) over; the ones refused, with why. Stopping
        partway, it raises ProviderDown with its ``progress``: a message that did not
        complete was not handed over."""

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        built, failed = messages(batch, self.clock())
        return with_build_failures(failed, lambda: self.write(built))

    def send_message(self, message: EmailMessage) -> None:
        """One message (a confirmation request): refused, it is a BatchRejected with why."""
        refused = self.write([(0, message)])
        if refused:
            prefix, where = self.refusal
            raise BatchRejected(prefix + next(iter(refused.values())), where=where)


def with_build_failures(
    failed: Mapping[int, str], write: Callable[[], Mapping[int, str]]
) -> Mapping[int, str]:
    """What ``write`` refused, and the recipients whose message could not be built (they fail
    too); also in the progress of a ProviderDown that stopped it partway."""
    try:
        refused = write()
    except ProviderDown as stop:
        if stop.progress:
            stop.progress = replace(stop.progress, refused={**failed, **stop.progress.refused})
        raise
    return {**failed, **refused}
