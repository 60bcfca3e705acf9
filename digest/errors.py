"""One root error for everything a user can cause: bad config, unreadable source, bad input.

Anything else that escapes is a bug and keeps its traceback. The CLI prints a ``DigestError``
as one line (``str(err)``) and exits non-zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class DigestError(Exception):
    """A problem the user can fix; ``where`` says which file, key, source or row it concerns."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class ConfigError(DigestError):
    """The configuration file is missing, unreadable or invalid."""


class SourceError(DigestError):
    """A source could not be fetched or parsed."""


class SecretMissing(DigestError):
    """A secret that must come from the environment is not set."""


@dataclass(frozen=True)
class Progress:
    """How far a transport got with a batch before it stopped, when it hands a batch over in
    parts (a message at a time, as the outbox and SMTP do; a request per part of a batch
    SendGrid takes only split): the recipients it handed over, those refused (with why), and
    those whose part was on its way when it failed (``unknown``: the server may have it).
    Every other recipient of the batch was not handed over."""

    taken: frozenset[int] = frozenset()
    refused: Mapping[int, str] = field(default_factory=dict)
    unknown: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.taken or self.refused or self.unknown)


class TransportError(DigestError):
    """A transport did not hand something over; which of its kinds says what the send does.
    ``progress``: what of the batch it did hand over before the error (nothing, when empty)."""

    def __init__(
        self, message: str, *, where: str | None = None, progress: Progress | None = None
    ) -> None:
        super().__init__(message, where=where)
        self.progress = progress or Progress()


class ProviderDown(TransportError):
    """A transport cannot hand messages over at all (wrong key, server gone, failing every
    try, a full or read-only disk): nothing more can be sent, so the send stops."""


class DeliveryUnknown(TransportError):
    """The request went out but no answer came back (a read timeout): the provider may or may
    not have taken the batch. Its deliveries become ambiguous (with ``progress``, only the
    ``unknown`` ones); the policy decides on resume."""


class BatchRejected(TransportError):
    """The provider refused one batch (a 400 or 413, with its reason) or one message; the send
    goes on."""


class ApprovalError(DigestError):
    """An issue's approval state forbids what was asked: sending a held or pending issue
    without ``--force``, or changing the approval of an issue that is sending, sent or skipped."""


class NoReaders(DigestError):
    """An issue was about to be planned that nobody would get: no active subscriber follows
    any of its topics. Planning it would use its posts up for nothing."""
