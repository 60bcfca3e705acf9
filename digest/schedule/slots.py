"""When each digest runs: slots, catching up after downtime, DST edges, next runs.

Pure: every function takes the moment it reasons about.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from digest.config import Config, DigestConfig
from digest.schedule.waves import EARLIEST_ZONE, wall_time

ONE_MICROSECOND = timedelta(microseconds=1)


# Slots ----------------------------------------------------------------------------------------


def cron_trigger(digest: DigestConfig, cadence: str | None = None) -> CronTrigger:
    """The schedule of one of the digest's cadences (None: its default): cron fields read as
    wall-clock time in the digest's zone; with ``local_delivery``, at UTC+14, where the wall
    time comes first (the slot's first possible wave, :mod:`digest.schedule.waves`)."""
    schedules = digest.schedules
    cron = schedules[cadence if cadence is not None else digest.default]
    if digest.local_delivery:
        return CronTrigger.from_crontab(cron, timezone=ZoneInfo(EARLIEST_ZONE))
    return CronTrigger.from_crontab(cron, timezone=digest.zone)


class LeadTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler 3 is untyped
    """Fires ``lead`` before each fire time of a cron trigger: when a ``require`` digest asks
    its editors. Computed in UTC, so a 24 h lead across a DST change is still 24 hours."""

    def __init__(self, cron: CronTrigger, lead: timedelta) -> None:
        self.cron = cron
        self.lead = lead

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        previous = previous_fire_time.astimezone(UTC) + self.lead if previous_fire_time else None
        slot = self.cron.get_next_fire_time(previous, now.astimezone(UTC) + self.lead)
        return slot.astimezone(UTC) - self.lead if slot else None

    def __repr__(self) -> str:
        return f"<LeadTrigger {self.cron!r} minus {self.lead}>"

    __str__ = __repr__


def slots_between(trigger: BaseTrigger, after: datetime, until: datetime) -> list[datetime]:
    """Fire times in ``(after, until]``, in UTC, oldest first."""
    found: list[datetime] = []
    current = trigger.get_next_fire_time(None, after.astimezone(UTC) + ONE_MICROSECOND)
    while current is not None and current <= until:
        found.append(current.astimezone(UTC))
        current = trigger.get_next_fire_time(current, current.astimezone(UTC) + ONE_MICROSECOND)
    return found


def latest_slot(trigger: BaseTrigger, now: datetime, window: timedelta) -> datetime | None:
    """The newest fire time in ``(now - window, now]``: the slot a job that fires at ``now``
    runs for (APScheduler 3 does not tell a job which run time it was started for)."""
    found = slots_between(trigger, now - window, now)
    return found[-1] if found else None


def next_slot(digest: DigestConfig, now: datetime, cadence: str | None = None) -> datetime | None:
    found = cron_trigger(digest, cadence).get_next_fire_time(None, now)
    return found.astimezone(UTC) if found else None


def is_repeat(slot: datetime, zone: ZoneInfo) -> bool:
    """True for the second occurrence of a wall-clock time that happens twice (clocks went
    back): APScheduler 3.11 fires at both, a digest should go out once."""
    local = slot.astimezone(zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


@dataclass(frozen=True)
class CatchUp:
    """What happens to the slots that fell due while no scheduler ran."""

    run: datetime | None
    """The one slot that still runs: the newest, if it is within the misfire grace."""
    missed: tuple[datetime, ...]
    """Every other due slot: never run, recorded as missed."""


def catch_up(due: list[datetime], now: datetime, grace: timedelta) -> CatchUp:
    """Coalesce: after downtime one run, for the newest due slot, never one per missed slot;
    and only within the grace (a week-old issue arriving on Thursday helps nobody)."""
    if not due:
        return CatchUp(None, ())
    newest = due[-1]
    if now - newest <= grace:
        return CatchUp(newest, tuple(due[:-1]))
    return CatchUp(None, tuple(due))


# DST edges and `digest schedule list` ----------------------------------------------------------


@dataclass(frozen=True)
class DstEdge:
    """A wall-clock time the schedule names on a day the clocks change."""

    day: date
    wall: time
    kind: Literal["missing", "twice"]
    zone: str
    fires: tuple[datetime, ...]
    """What APScheduler does that day for this time (UTC), read from the trigger itself."""
    shift: timedelta
    """How far the clocks move (+1 h forward, −1 h back)."""

    def message(self) -> str:
        zone = ZoneInfo(self.zone)
        at = f"{self.day:%Y-%m-%d} {self.wall:%H:%M}"
        shown = [_local_and_utc(f, zone) for f in self.fires]
        if self.kind == "missing":
            then = (
                f"APScheduler runs it at {shown[0]} instead"
                if shown
                else "APScheduler does not run it that day"
            )
            return (
                f"{at} does not exist in {self.zone} (clocks go forward "
                f"{hours_label(self.shift)}): {then}"
            )
        if len(shown) > 1:
            then = (
                f"APScheduler fires at {' and again at '.join(shown)}; the digest runs the "
                "first and records the second as a repeat, sending nothing"
            )
        else:
            then = f"APScheduler runs it once, at {shown[0]}" if shown else "it does not run"
        back = hours_label(self.shift)
        return f"{at} happens twice in {self.zone} (clocks go back {back}): {then}"


def _local_and_utc(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%H:%M %Z} ({moment.astimezone(UTC):%H:%M} UTC)"


def hours_label(delta: timedelta) -> str:
    """A duration as people say it: 1 h, 90 min, 36 s."""
    seconds = abs(int(delta.total_seconds()))
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def dst_edges(
    digest: DigestConfig, now: datetime, days: int = 366, cadence: str | None = None
) -> list[DstEdge]:
    """Times the schedule of a cadence (None: the default) names that do not exist, or exist
    twice, in the next ``days``.

    The days clocks change are found from the zone's offsets; the wall times the cron names
    on such a day come from the same cron read in UTC (which has no DST, so it lists wall
    times as written); what APScheduler does with each comes from the digest's real trigger.
    """
    if digest.local_delivery:
        return []  # each zone's wave has its own edges: see digest.schedule.waves
    zone = digest.zone
    cadence = digest.default if cadence is None else cadence
    trigger = cron_trigger(digest, cadence)
    wall_clock = CronTrigger.from_crontab(digest.schedules[cadence], timezone=UTC)
    edges: list[DstEdge] = []
    for day in _change_days(zone, now.astimezone(zone).date(), days):
        midnight = datetime.combine(day, time(), UTC)
        named = [
            t.replace(tzinfo=None)
            for t in slots_between(wall_clock, midnight - ONE_MICROSECOND, midnight + _DAY)
            if t.date() == day
        ]
        named_times = {t.time() for t in named}
        # What the trigger fires around that day, read once: a schedule naming every minute
        # names 60 times in the changing hour, and each looked the window up again.
        around: frozenset[datetime] | None = None
        for naive in named:
            first, second = naive.replace(tzinfo=zone), naive.replace(tzinfo=zone, fold=1)
            shift = (second.utcoffset() or timedelta()) - (first.utcoffset() or timedelta())
            if not shift:
                continue
            exists = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive
            instants = {first.astimezone(UTC), second.astimezone(UTC)}
            if around is None:
                around = frozenset(slots_between(trigger, midnight - 2 * _DAY, midnight + 3 * _DAY))
            fires = tuple(sorted(instants & around))
            if not exists:  # a fire at a time the schedule names anyway is no replacement
                fires = tuple(
                    f
                    for f in fires
                    if f.astimezone(zone).replace(tzinfo=None).time() not in named_times
                )
            kind: Literal["missing", "twice"] = "twice" if exists else "missing"
            edges.append(DstEdge(day, naive.time(), kind, zone.key, fires, shift))
    return edges


_DAY = timedelta(days=1)


def _change_days(zone: ZoneInfo, start: date, days: int) -> Iterator[date]:
    """Days on which the zone's UTC offset changes (checked between consecutive midnights)."""
    previous = datetime.combine(start, time(), zone).utcoffset()
    for i in range(1, days + 1):
        current = datetime.combine(start + timedelta(days=i), time(), zone).utcoffset()
        if current != previous:
            yield start + timedelta(days=i - 1)
            yield start + timedelta(days=i)
        previous = current


@dataclass(frozen=True)
class NextRun:
    """One line of ``digest schedule list``."""

    digest: str
    name: str
    schedule: str
    timezone: str
    policy: str
    at: datetime | None
    """The next slot, UTC."""
    ask_at: datetime | None
    """When the approval request goes out (``require`` only), UTC."""
    grace: timedelta
    edges: tuple[DstEdge, ...] = field(default=())
    cadence: str = ""
    local_delivery: bool = False
    """The slot is a wall time in each reader's zone; ``at`` is its first possible wave."""

    @property
    def local(self) -> datetime | None:
        if self.at is None:
            return None
        if self.local_delivery:
            return wall_time(self.at)
        return self.at.astimezone(ZoneInfo(self.timezone))


def next_runs(config: Config, now: datetime) -> list[NextRun]:
    """Each digest's cadence's next slot, in its zone and in UTC, with its DST edges for a
    year (with ``local_delivery``: the wall time, ``at`` its first possible wave)."""
    runs = []
    for digest in config.digests:
        for cadence, schedule in digest.schedules.items():
            at = next_slot(digest, now, cadence)
            ask_at = None
            if digest.approval == "require":
                ask = LeadTrigger(cron_trigger(digest, cadence), digest.approval_lead)
                found = ask.get_next_fire_time(None, now)
                ask_at = found.astimezone(UTC) if found else None
            runs.append(
                NextRun(
                    digest.slug,
                    digest.name,
                    schedule,
                    digest.timezone,
                    digest.approval,
                    at,
                    ask_at,
                    digest.misfire_grace,
                    tuple(dst_edges(digest, now, cadence=cadence)),
                    cadence,
                    digest.local_delivery,
                )
            )
    return runs


next_slots = next_runs
"""The name the editor contract uses."""
