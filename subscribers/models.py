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

    @property
    def suppressed(self) -> bool:
        """Never mailed again, and never reactivated by an import."""
        return self in SUPPRESSED


SUPPRESSED = frozenset({Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED})


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: Status
    topics: frozenset[str]
    paused_until: datetime | None = None

    def paused(self, now: datetime) -> bool:
        return self.paused_until is not None and self.paused_until > now

    @property
    def first_name(self) -> str:
        return first_name_of(self.name)


def first_name_of(name: str) -> str:
    """The greeting's name: the first word of the full name, or empty."""
    words = name.split()
    return words[0] if words else ""
