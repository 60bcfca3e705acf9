"""Dates from feeds, in UTC.

feedparser's date handlers understand RFC 822, W3C-DTF, ISO 8601 and several localized formats,
but its combined parser tries the lenient ISO 8601 handler early, and that handler fills missing
fields from today's date (``2013-xx-27`` becomes a day in the current month). Here the strict
handlers run first and the ISO 8601 one only sees strings made of date characters.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

from feedparser.datetimes import asctime, greek, hungarian, iso8601, korean, perforce, rfc822, w3dtf

Handler = Callable[[str], time.struct_time | None]
_TIGHT_COMMA = re.compile(r"^([A-Za-z]{3}),(\S)")


def _rfc822_tight_comma(text: str) -> time.struct_time | None:
    """RFC 822 with no space after the weekday's comma (``Fri,24 Nov 2023 …``)."""
    spaced = _TIGHT_COMMA.sub(r"\1, \2", text, count=1)
    return rfc822._parse_date_rfc822(spaced) if spaced != text else None


_STRICT: tuple[Handler, ...] = (
    w3dtf._parse_date_w3dtf,
    rfc822._parse_date_rfc822,
    _rfc822_tight_comma,
    asctime._parse_date_asctime,
    perforce._parse_date_perforce,
    hungarian._parse_date_hungarian,
    greek._parse_date_greek,
    korean._parse_date_nate,
    korean._parse_date_onblog,
)
_ISO_CHARACTERS = re.compile(r"^[0-9T:+.Z-]+$")
_TIME = re.compile(r"T(\d{2}):(\d{2})(?::(\d{2}))?")
_DATE_THEN_JUNK = re.compile(r"^\d{4}-\d{2}-\d{2}-")


def parse_date(text: str | None) -> datetime | None:
    """An aware UTC datetime, or None when the text is not a date we can trust."""
    if not text or not text.strip():
        return None
    text = text.strip()
    for handler in _STRICT:
        if (parsed := _try(handler, text)) is not None:
            return parsed
    if _ISO_CHARACTERS.match(text) and _plausible_iso(text):
        return _try(iso8601._parse_date_iso8601, text)
    return None


def _plausible_iso(text: str) -> bool:
    """The lenient ISO handler rolls 25:14 over into the next day; refuse such times."""
    if _DATE_THEN_JUNK.match(text):
        return False
    clock = _TIME.search(text)
    if clock is None:
        return True
    hours, minutes, seconds = (int(v) if v else 0 for v in clock.groups())
    return hours < 24 and minutes < 60 and seconds < 61


def from_struct(value: time.struct_time) -> datetime | None:
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _try(handler: Handler, text: str) -> datetime | None:
    try:
        value = handler(text)
    except (ValueError, OverflowError, IndexError, KeyError, TypeError):
        return None
    return from_struct(value) if value is not None else None
