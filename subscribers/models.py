"""Subscriber values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"
    """Erased on request: the row keeps no address or name, only a keyed hash of the address
    (:mod:`subscribers.erasure`) so that the person stays suppressed."""

    @property
    def suppressed(self) -> bool:
        """Never mailed again, and never made active by an import that says nothing of
        consent (see :data:`NEEDS_OWN_CONFIRMATION` for those no import revives)."""
        return self in SUPPRESSED


SUPPRESSED = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED, Status.ERASED})
NEEDS_OWN_CONFIRMATION = frozenset({Status.BOUNCED, Status.COMPLAINED, Status.ERASED})
"""Who no import brings back, not even with ``--reactivate``: a complaint is the person telling
their mail provider we sent spam, a bounce says the address does not take mail, an erasure is
a request to be forgotten. An editor's file cannot prove any of that has changed; only the
person can, by a fresh double opt-in from their own mailbox (the preferences page's
"send me a confirmation link"). An unsubscription is different: the person may well have
asked the editor to come back, and ``--reactivate`` is the editor saying so."""


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: Status
    topics: frozenset[str]
    paused_until: datetime | None = None
    time_zone: str | None = None
    """An IANA name; None: each digest's own zone."""

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now

    @property
    def first_name(self) -> str:
        return first_name_of(self.name)


def first_name_of(name: str) -> str:
    """The greeting's name: the first word of the full name, or empty."""
    words = name.split()
    return words[0] if words else ""
