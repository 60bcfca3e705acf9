"""The local-time waves of issues (``issue_waves``): written when a slot's issue is planned,
marked as each wave is recorded and sent; and the zones readers have."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, func, insert, select, type_coerce, update

from digest import db
from digest.lifecycle import IssueStatus
from subscribers import tables as subscriber_tables
from subscribers.models import Status

_W = db.issue_waves.c


@dataclass(frozen=True)
class WaveRow:
    issue_id: int
    wave_at: datetime
    zones: tuple[str, ...]
    readers: int | None
    recorded_at: datetime | None
    sent_at: datetime | None

    @property
    def done(self) -> bool:
        return self.sent_at is not None


def _row(row: object) -> WaveRow:
    values = dict(row._mapping)  # type: ignore[attr-defined]
    values["zones"] = tuple(z for z in values["zones"].split(",") if z)
    return WaveRow(**values)


def reader_zones(conn: Connection) -> set[str]:
    """The time zones active readers have set (readers without one get the digest's)."""
    s = subscriber_tables.subscribers.c
    query = (
        select(s.time_zone)
        .where(s.status == Status.ACTIVE.value, s.time_zone.is_not(None))
        .distinct()
    )
    return {zone for zone in conn.execute(query).scalars() if zone}


def readers_per_zone(conn: Connection, default_zone: str) -> dict[str, int]:
    """Active readers per time zone as stored (those without one under ``default_zone``)."""
    s = subscriber_tables.subscribers.c
    zone = func.coalesce(s.time_zone, default_zone)
    query = select(zone, func.count()).where(s.status == Status.ACTIVE.value).group_by(zone)
    return {name: int(count) for name, count in conn.execute(query)}


def add_waves(
    conn: Connection, issue_id: int, waves: Iterable[tuple[datetime, Sequence[str]]]
) -> None:
    """The issue's waves, once: a second planner of the slot finds them there already."""
    if conn.execute(select(_W.issue_id).where(_W.issue_id == issue_id).limit(1)).first():
        return
    conn.execute(
        insert(db.issue_waves),
        [{"issue_id": issue_id, "wave_at": at, "zones": ",".join(zones)} for at, zones in waves],
    )


def waves_of(conn: Connection, issue_id: int) -> list[WaveRow]:
    rows = conn.execute(select(db.issue_waves).where(_W.issue_id == issue_id).order_by(_W.wave_at))
    return [_row(row) for row in rows]


def mark_recorded(
    conn: Connection, issue_id: int, wave_ats: Sequence[datetime], readers: int, now: datetime
) -> None:
    """The waves ``wave_ats`` were recorded together (``readers`` recorded by them, counted
    on the first, since one recording served them all)."""
    first = True
    for at in wave_ats:
        conn.execute(
            update(db.issue_waves)
            .where(_W.issue_id == issue_id, _W.wave_at == at, _W.recorded_at.is_(None))
            .values(recorded_at=now, readers=readers if first else 0)
        )
        first = False


def mark_sent(conn: Connection, issue_id: int, wave_ats: Sequence[datetime], now: datetime) -> None:
    conn.execute(
        update(db.issue_waves)
        .where(_W.issue_id == issue_id, _W.wave_at.in_(list(wave_ats)), _W.sent_at.is_(None))
        .values(sent_at=now)
    )


def close_waves_of_sent_issues(conn: Connection, now: datetime) -> None:
    """Waves of a sent issue that were never marked, done now.

    A process that dies in an issue's last wave after the issue was sent (its recording and
    every batch done) and before the wave was marked leaves it open, and a sent issue is
    never resumed: its waves would show as waiting for good. Its readers all got their
    email, so the waves are done. How many readers the lost run recorded stays unknown."""
    sent = select(db.issues.c.id).where(db.issues.c.status == IssueStatus.SENT)
    open_waves = and_(_W.issue_id.in_(sent), _W.sent_at.is_(None))
    conn.execute(
        update(db.issue_waves).where(open_waves, _W.recorded_at.is_(None)).values(recorded_at=now)
    )
    conn.execute(update(db.issue_waves).where(open_waves).values(sent_at=now))


def issues_with_waves_left(conn: Connection) -> list[tuple[int, str, str, datetime, datetime]]:
    """(issue id, digest, cadence, slot, next wave) of every unfinished issue with a wave not
    done: what a scheduler coming back resumes."""
    i = db.issues.c
    query = (
        select(
            i.id,
            i.digest,
            i.cadence,
            i.slot,
            type_coerce(func.min(_W.wave_at), subscriber_tables.UtcDateTime()),
        )
        .join(db.issue_waves, _W.issue_id == i.id)
        .where(
            _W.sent_at.is_(None),
            i.slot.is_not(None),
            i.status.not_in((IssueStatus.SENT, IssueStatus.SKIPPED)),
        )
        .group_by(i.id, i.digest, i.cadence, i.slot)
    )
    return [(row[0], row[1], row[2], row[3], row[4]) for row in conn.execute(query)]
