"""A reader's time zone, as a person (a form, a browser, a file) gives it: an IANA name the
machine's zone database knows, matched whatever its case, or nothing (the digest's zone).

Checked against the list of known names rather than by trying to open one: ``ZoneInfo`` takes
a key as a path under its search path, so only a name from the list is ever handed to it."""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

MAX_ZONE_LENGTH = 64
"""The width of ``subscribers.time_zone``; the longest IANA name is about 30 characters."""


@cache
def _known() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


def canonical_zone(text: str) -> str | None:
    """The IANA name ``text`` spells (any case, surrounding blanks ignored), or None when it
    names no known zone. Empty text is no zone: check for it first."""
    cleaned = text.strip()
    if not cleaned or len(cleaned) > MAX_ZONE_LENGTH:
        return None
    return _known().get(cleaned.casefold())


def zone_problem(text: str) -> str | None:
    """Why ``text`` is no time zone, for a reader or an import report; None when it is one
    (or empty: the digest's zone)."""
    if not text.strip() or canonical_zone(text) is not None:
        return None
    shown = text if len(text) <= MAX_ZONE_LENGTH else text[:MAX_ZONE_LENGTH] + "…"
    return f"{shown!r} is not a time zone we know; expected an IANA name such as Europe/Berlin"
