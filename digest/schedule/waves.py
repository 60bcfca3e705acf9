"""Local-time waves: one slot's wall time (e.g. Monday 08:00) read in every time zone its
readers have, grouped by the UTC instant it falls on. Pure: zones by name, no I/O.

A slot of a ``local_delivery`` cadence is named by the instant its wall time has at UTC+14
(:data:`EARLIEST`), the first moment that wall time exists anywhere: the scheduler's job
fires then, and every wave of the slot is at or after it. :func:`wall_time` reads the wall
time back from such a slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EARLIEST = timezone(timedelta(hours=14))
"""The most eastern UTC offset in use (Pacific/Kiritimati): a wall time happens there first."""
LATEST = timezone(timedelta(hours=-12))
"""The most western (Etc/GMT+12): a wall time happens there last, 26 hours after +14."""
WAVES_SPAN = timedelta(hours=26)
"""From a wall time at +14:00 to the same wall time at −12:00."""
EARLIEST_ZONE = "Etc/GMT-14"
""":data:`EARLIEST` as a zone name (the Etc names' signs are inverted, as POSIX has them)."""


@dataclass(frozen=True)
class Wave:
    """The readers' zones whose wall time of the slot is the instant ``at`` (UTC)."""

    at: datetime
    zones: tuple[str, ...]

    def offset_label(self, zone: str | None = None) -> str:
        """The UTC offset the wall time has in the wave's (first) zone, e.g. ``+05:45``."""
        name = zone or self.zones[0]
        offset = self.at.astimezone(zone_of(name)).utcoffset() or timedelta()
        sign = "-" if offset < timedelta() else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def wall_time(slot: datetime) -> datetime:
    """The (naive) wall time a local-delivery slot names (see the module's docstring)."""
    return slot.astimezone(EARLIEST).replace(tzinfo=None)


def slot_of(wall: datetime) -> datetime:
    """The slot (UTC) naming a wall time: that wall time at UTC+14."""
    return wall.replace(tzinfo=EARLIEST).astimezone(UTC)


@cache
def known_zone(name: str) -> ZoneInfo | None:
    """The zone of a name, or None for a name this machine's tz database does not know (a
    reader's stored zone is not trusted to be one)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_of(name: str) -> ZoneInfo:
    return known_zone(name) or ZoneInfo("UTC")


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant a naive wall time has in ``zone``.

    A time that happens twice (clocks go back) is its first occurrence. A time that does not
    exist (clocks go forward) is the first instant after the gap: 02:30 on the day Berlin
    jumps from 02:00 to 03:00 is 03:00 CEST, so readers there get it as soon as the day's
    clock allows, never an hour later than a reader whose clock had no gap."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 reads it with the offset after the change, an earlier instant; the
    # change itself lies between the two readings.
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(early, first), max(early, first)
    after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def waves(wall: datetime, zones: Iterable[str], default_zone: str) -> list[Wave]:
    """The waves of a slot whose wall time is ``wall``, for readers in ``zones`` (names as
    stored; a name the tz database does not know is read as ``default_zone``, where readers
    without a zone are too), oldest first. Every zone is in exactly one wave."""
    by_instant: dict[datetime, set[str]] = {}
    default = zone_of(default_zone)
    for name in {*zones, default_zone}:
        at = local_instant(wall, known_zone(name) or default)
        by_instant.setdefault(at, set()).add(name)
    return [Wave(at, tuple(sorted(names))) for at, names in sorted(by_instant.items())]


def due_zones(wall: datetime, zones: Iterable[str], default_zone: str, now: datetime) -> set[str]:
    """The zones whose wall time of the slot has come by ``now``."""
    return {z for wave in waves(wall, zones, default_zone) if wave.at <= now for z in wave.zones}
