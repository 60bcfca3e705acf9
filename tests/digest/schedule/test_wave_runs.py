"""Local-time waves run by the scheduler, on SQLite and PostgreSQL, with an injected clock.

The scheduler's jobs are driven as APScheduler would drive them (the earliest job in the job
store fires at its time, a cron job moves on to its next time, a date job goes), but with the
clock set to each job's time instead of waiting for it: weeks pass in seconds. Readers live in
thirteen zones (+14:00, +05:45, −03:30, −11:00, −12:00, Lord Howe's 30-minute DST among them),
across the spring and autumn clock changes of Europe/Berlin and America/New_York.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select, update

from digest import db
from digest import scheduler as scheduler_face
from digest.app import gathering
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import Config
from digest.lifecycle import IssueStatus
from digest.models import Post
from digest.schedule.waves import local_instant, wall_time
from digest.scheduler import SchedulerService
from digest.stores import issues as issue_store
from digest.stores import posts as post_store
from digest.stores import waves as waves_store
from subscribers import tables as subscriber_tables
from subscribers.importer import parse_csv, topic_resolver
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock

DATA = Path(__file__).parents[2] / "data" / "waves"
BERLIN = "Europe/Berlin"


@pytest.fixture
def project(example_config: Config, clock: FixedClock, engine: Engine) -> Iterator[Project]:
    project = Project.open(example_config, clock=clock, engine=engine)
    yield project
    scheduler_face._service = None


def use(project: Project, **changes: Any) -> None:
    digest = project.config.digests[0].model_copy(update=changes)
    project.config = replace(
        project.config, file=project.config.file.model_copy(update={"digests": [digest]})
    )


def add_readers(project: Project) -> dict[str, str | None]:
    """The readers of tests/data/waves/readers.csv, with their time zones; email → zone."""
    with (DATA / "readers.csv").open(encoding="utf-8", newline="") as handle:
        text = handle.read().splitlines()
    # Imports refuse a zone the tz database does not know; one stored before it was dropped
    # (Mars/Olympus here) is set directly below, and must go with the digest's zone.
    importable = [line.replace(",Mars/Olympus", ",") for line in text]
    parsed = parse_csv(importable, topic_resolver((t.slug, t.name) for t in project.topics()))
    assert not parsed.problems
    zones = {line.split(",")[0]: line.rsplit(",", 1)[1] or None for line in text[1:]}
    with project.engine.begin() as conn:
        SubscriberStore(conn).upsert(parsed.rows, project.clock(), "test")
    for email, zone in zones.items():
        move(project, email, zone)
    return zones


def move(project: Project, email: str, zone: str | None) -> None:
    """A reader sets another time zone (as the preference centre does)."""
    s = subscriber_tables.subscribers.c
    with project.engine.begin() as conn:
        conn.execute(
            update(subscriber_tables.subscribers).where(s.email == email).values(time_zone=zone)
        )


def add_post(project: Project, n: int, at: datetime) -> None:
    post = Post(
        uid=f"https://northwind.example/waves/{n}",
        url=f"https://northwind.example/waves/{n}",
        title=f"Week {n} in the backend",
        excerpt="What changed this week.",
        published_at=at,
        topics=("backend",),
        content_hash=f"hash-{n}",
        source="test",
    )
    with project.transaction() as conn:
        post_store.store_posts(conn, [post], post_store.topic_ids(conn), at)


class Driver:
    """Fires the scheduler's jobs in time order with the clock set to each job's time."""

    def __init__(self, project: Project, clock: FixedClock) -> None:
        self.project = project
        self.clock = clock
        self.service = self.start()
        self.fired: list[tuple[str, datetime]] = []

    def start(self) -> SchedulerService:
        service = SchedulerService(self.project)
        service.scheduler.start(paused=True)
        scheduler_face._service = service
        service.sync(self.clock())
        return service

    def crash_and_restart(self) -> None:
        """The process stops (its jobs stay in the store) and a new one starts."""
        self.service.stop(wait=False)
        self.service = self.start()

    def jobs(self) -> list[Any]:
        found = [
            j
            for j in self.service.scheduler.get_jobs()
            if j.id.startswith(("digest:", "wave:")) and j.next_run_time is not None
        ]
        return sorted(found, key=lambda j: (j.next_run_time, j.id))

    def run_until(self, until: datetime, between: Any = None) -> None:
        while True:
            jobs = self.jobs()
            if not jobs or jobs[0].next_run_time > until:
                self.clock.now = until
                return
            job = jobs[0]
            at = job.next_run_time.astimezone(UTC)
            self.clock.now = max(self.clock.now, at)
            if between is not None:
                between(self.clock.now)
            job.func(*job.args)
            self.fired.append((job.id, at))
            again = self.service.scheduler.get_job(job.id)
            if job.id.startswith("wave:"):
                if again is not None and again.next_run_time == job.next_run_time:
                    self.service.scheduler.remove_job(job.id)  # a date job runs once
            else:
                following = job.trigger.get_next_fire_time(job.next_run_time, self.clock.now)
                self.service.scheduler.modify_job(job.id, next_run_time=following)


def delivered(project: Project) -> list[tuple[int, str, datetime]]:
    """(issue id, address, when recorded) of every delivery."""
    d = db.deliveries.c
    with project.engine.connect() as conn:
        rows = conn.execute(select(d.issue_id, d.email, d.created_at)).all()
    return [(i, e, c.astimezone(UTC) if c.tzinfo else c.replace(tzinfo=UTC)) for i, e, c in rows]


def slot_issues(project: Project) -> list[issue_store.IssueRow]:
    with project.engine.connect() as conn:
        return sorted(issue_store.issues_of(conn, "weekly"), key=lambda r: r.number)


def expected_instant(slot: datetime, zone: str | None) -> datetime:
    name = zone if zone and zone != "Mars/Olympus" else BERLIN
    return local_instant(wall_time(slot), ZoneInfo(name))


def outbox_files(project: Project, per_issue: bool = False) -> Counter[str]:
    """Emails written to the outbox, per recipient address (and issue folder)."""
    found: Counter[str] = Counter()
    for path in project.config.outbox_dir.rglob("*.eml"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("To:"):
                address = line.split("<")[-1].rstrip(">").strip()
                found[f"{path.parent}:{address}" if per_issue else address] += 1
                break
    return found


def weekly_posts(project: Project, start: datetime, weeks: int) -> None:
    for n in range(weeks):
        add_post(project, n, start + timedelta(days=7 * n))


@pytest.mark.parametrize(
    ("schedule", "start", "weeks"),
    [
        # Sundays 02:30: Berlin's and New York's spring gap (29 and 8 March), Berlin's
        # autumn fold (25 October), Lord Howe's 30-minute gap (4 October), Auckland's gap
        # (27 September) and fold (5 April).
        ("30 2 * * sun", datetime(2026, 3, 1, tzinfo=UTC), 7),
        ("30 2 * * sun", datetime(2026, 9, 20, tzinfo=UTC), 8),
        # Sundays 01:30: New York's and St John's autumn fold (1 November), Lord Howe's
        # (5 April).
        ("30 1 * * sun", datetime(2026, 10, 18, tzinfo=UTC), 4),
        ("30 1 * * sun", datetime(2026, 3, 22, tzinfo=UTC), 3),
    ],
)
def test_every_reader_gets_each_slot_once_at_the_wall_time_of_their_zone(
    project: Project, clock: FixedClock, schedule: str, start: datetime, weeks: int
) -> None:
    use(project, schedule=schedule, local_delivery=True)
    clock.now = start - timedelta(days=3)
    gathering.gather_sources(project)
    zones = add_readers(project)
    weekly_posts(project, start - timedelta(days=1), weeks)
    driver = Driver(project, clock)
    driver.run_until(start + timedelta(days=7 * weeks - 1))

    issues = [r for r in slot_issues(project) if r.slot is not None]
    assert len(issues) == weeks
    got = delivered(project)
    by_issue = Counter(issue for issue, _, _ in got)
    for row in issues:
        assert row.status == IssueStatus.SENT and row.recorded_at is not None
        assert by_issue[row.id] == len(zones)  # everyone, once (the key forbids twice)
        assert row.recorded_at == max(c for i, _, c in got if i == row.id)
        with project.engine.connect() as conn:
            stored = waves_store.waves_of(conn, row.id)
        assert stored and all(w.done for w in stored)
        assert len(stored) >= 10
    slot_of = {row.id: row.slot for row in issues}
    for issue_id, email, when in got:
        slot = slot_of[issue_id]
        assert slot is not None
        assert when == expected_instant(slot, zones[email]), (email, zones[email], slot)
    assert outbox_files(project) == Counter(dict.fromkeys(zones, weeks))


def test_readers_moving_between_waves_get_the_slot_once_never_twice_or_not_at_all(
    project: Project, clock: FixedClock
) -> None:
    start = datetime(2026, 3, 29, tzinfo=UTC)  # Berlin springs forward that night
    use(project, schedule="30 2 * * sun", local_delivery=True)
    clock.now = start - timedelta(days=3)
    gathering.gather_sources(project)
    zones = add_readers(project)
    add_post(project, 1, start - timedelta(days=1))
    driver = Driver(project, clock)
    tokyo_done = datetime(2026, 3, 28, 17, 30, tzinfo=UTC)  # 02:30 JST has come
    kathmandu_done = datetime(2026, 3, 28, 20, 50, tzinfo=UTC)  # 02:30 +05:45 was 20:45
    moves: dict[str, list[tuple[datetime, str | None]]] = {
        # from a done wave to a later one: recorded already, not again
        "tokyo1@example.com": [(tokyo_done + timedelta(minutes=1), "America/New_York")],
        # from a later wave to a done one: due at the next wave, not never
        "pago-pago1@example.com": [(kathmandu_done, "Asia/Kathmandu")],
        # there and back again
        "kathmandu1@example.com": [
            (datetime(2026, 3, 28, 21, 0, tzinfo=UTC), "Etc/GMT+12"),
            (datetime(2026, 3, 29, 5, 0, tzinfo=UTC), "Asia/Kathmandu"),
        ],
        # from a later wave to another later one, and to no zone at all
        "los-angeles1@example.com": [(tokyo_done, "Pacific/Pago_Pago")],
        "st-johns1@example.com": [(tokyo_done, None)],
    }
    pending = sorted((at, email, zone) for email, steps in moves.items() for at, zone in steps)

    def between(now: datetime) -> None:
        while pending and pending[0][0] <= now:
            _, email, zone = pending.pop(0)
            move(project, email, zone)

    driver.run_until(start + timedelta(days=2), between)
    [row] = [r for r in slot_issues(project) if r.slot is not None]
    got = {email: when for issue, email, when in delivered(project) if issue == row.id}
    assert set(got) == set(zones)  # everyone once (a second delivery is a key violation)
    assert row.slot is not None
    assert got["tokyo1@example.com"] == expected_instant(row.slot, "Asia/Tokyo")
    # Kathmandu's wave had passed when Pago Pago's reader moved there: the next wave has them
    kathmandu = expected_instant(row.slot, "Asia/Kathmandu")
    kolkata = expected_instant(row.slot, "Asia/Kolkata")
    assert kathmandu < got["pago-pago1@example.com"] == kolkata
    assert got["kathmandu1@example.com"] == expected_instant(row.slot, "Asia/Kathmandu")
    assert got["los-angeles1@example.com"] == expected_instant(row.slot, "Pacific/Pago_Pago")
    assert got["st-johns1@example.com"] == expected_instant(row.slot, BERLIN)
    # Berlin's 02:30 does not exist that night: the first instant after the gap, 03:00 CEST
    assert got["berlin1@example.com"] == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert outbox_files(project) == Counter(dict.fromkeys(zones, 1))


def test_a_crash_between_waves_and_during_one_then_a_restart_runs_each_wave_once(
    project: Project, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)  # New York falls back that night
    use(project, schedule="30 1 * * sun", local_delivery=True)
    clock.now = start - timedelta(days=3)
    gathering.gather_sources(project)
    zones = add_readers(project)
    add_post(project, 1, start - timedelta(days=1))
    driver = Driver(project, clock)
    driver.run_until(datetime(2026, 10, 31, 20, 0, tzinfo=UTC))  # some waves done
    [row] = slot_issues(project)
    with project.engine.connect() as conn:
        before = waves_store.waves_of(conn, row.id)
    done = [w for w in before if w.done]
    assert 0 < len(done) < len(before)

    # The process stops; while it is down two waves fall due. A new one starts much later.
    driver.service.stop(wait=False)
    clock.now = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    driver.service = driver.start()
    [resumed] = [j for j in driver.service.scheduler.get_jobs() if j.id.startswith("wave:")]
    assert resumed.next_run_time == clock.now  # the overdue waves run now, once

    # It dies again in the middle of a wave: after recording and sending, before marking it.
    def dies(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(waves_store, "mark_recorded", dies)
    with pytest.raises(KeyboardInterrupt):
        driver.run_until(datetime(2026, 11, 1, 2, 0, tzinfo=UTC))
    monkeypatch.undo()
    driver.crash_and_restart()
    driver.run_until(start + timedelta(days=2))

    got = [(email, when) for issue, email, when in delivered(project) if issue == row.id]
    assert sorted(email for email, _ in got) == sorted(zones)
    assert outbox_files(project) == Counter(dict.fromkeys(zones, 1))
    with project.engine.connect() as conn:
        after = waves_store.waves_of(conn, row.id)
        final = issue_store.issue_row(conn, row.id)
    assert all(w.done for w in after) and final.status == IssueStatus.SENT
    assert [w.wave_at for w in after] == [w.wave_at for w in before]
    # Each wave ran at most once past its time: its readers were recorded when it ran
    for email, when in got:
        due = expected_instant(row.slot or start, zones[email])
        assert when == due or (
            datetime(2026, 10, 31, 20, 0, tzinfo=UTC) < due <= when == clock_at_restart()
        ), (email, zones[email])


def clock_at_restart() -> datetime:
    return datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def test_a_daily_slot_whose_waves_outlast_a_day_ends_when_the_next_slot_begins(
    project: Project, clock: FixedClock
) -> None:
    """08:00 at −11:00 (Pago Pago) comes an hour after 08:00 of the next day at +14:00: the
    next slot's first wave ends the previous slot, so its issue's posts are not owed twice."""
    start = datetime(2026, 11, 22, tzinfo=UTC)
    use(project, schedule="0 8 * * *", local_delivery=True)
    clock.now = start - timedelta(days=2)
    gathering.gather_sources(project)
    zones = add_readers(project)
    for n in range(4):
        add_post(project, n, start + timedelta(days=n) - timedelta(hours=12))
    driver = Driver(project, clock)
    driver.run_until(start + timedelta(days=3, hours=12))
    issues = [r for r in slot_issues(project) if r.slot is not None]
    assert len(issues) >= 3
    got = delivered(project)
    for row in issues[:3]:
        assert row.status == IssueStatus.SENT
        mine = {email: when for issue, email, when in got if issue == row.id}
        assert set(mine) == set(zones)
        assert row.slot is not None
        following = row.slot + timedelta(days=1)  # the next slot's first wave (+14:00)
        for email, when in mine.items():
            due = expected_instant(row.slot, zones[email])
            assert when == (due if due <= following else following), email
    assert max(outbox_files(project, per_issue=True).values()) == 1


EDITOR = "Ed Itor <ed@example.com>"


def test_approval_covers_every_wave_and_an_unapproved_slot_sends_no_wave(
    project: Project, clock: FixedClock
) -> None:
    start = datetime(2026, 11, 23, tzinfo=UTC)  # Monday
    use(
        project,
        schedule="0 8 * * mon",
        local_delivery=True,
        approval="require",
        notify=[EDITOR],
    )
    clock.now = start - timedelta(days=4)
    gathering.gather_sources(project)
    zones = add_readers(project)
    add_post(project, 1, start - timedelta(days=3))
    add_post(project, 2, start + timedelta(days=4))
    driver = Driver(project, clock)
    first_wave = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)  # 08:00 at +14:00
    driver.run_until(first_wave - timedelta(hours=1))
    [asked] = slot_issues(project)
    assert (asked.approval, asked.status) == ("pending", IssueStatus.PLANNED)
    issue_cases.decide(project, asked.id, "approve", "ed@example.com")
    driver.run_until(start + timedelta(days=6))  # every wave of the first week, asked again
    second = slot_issues(project)[-1]
    assert second.id != asked.id and second.approval == "pending"
    driver.run_until(start + timedelta(days=9))  # nobody approved the second
    rows = slot_issues(project)
    assert [(r.id, r.status) for r in rows] == [
        (asked.id, IssueStatus.SENT),
        (second.id, IssueStatus.SKIPPED),
    ]
    got = delivered(project)
    assert sorted(email for issue, email, _ in got if issue == asked.id) == sorted(zones)
    assert not [email for issue, email, _ in got if issue == second.id]
    with project.engine.connect() as conn:
        assert all(w.done for w in waves_store.waves_of(conn, asked.id))
        assert not any(w.recorded_at for w in waves_store.waves_of(conn, second.id))
    assert second.slot is not None
    assert driver.service.scheduler.get_job(f"wave:weekly::{int(second.slot.timestamp())}") is None


def test_a_scheduler_back_hours_after_the_first_wave_still_sends_every_wave(
    project: Project, clock: FixedClock
) -> None:
    start = datetime(2026, 11, 23, tzinfo=UTC)  # Monday
    use(project, schedule="0 8 * * mon", local_delivery=True)
    clock.now = start - timedelta(days=3)
    gathering.gather_sources(project)
    zones = add_readers(project)
    add_post(project, 1, start - timedelta(days=2))
    driver = Driver(project, clock)
    driver.service.stop(wait=False)  # down from before the first wave (Sunday 18:00 UTC)…
    back = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # …until ten hours after it
    clock.now = back
    driver.service = driver.start()
    driver.run_until(start + timedelta(days=2))
    [row] = slot_issues(project)
    assert row.status == IssueStatus.SENT and row.slot is not None
    got = {email: when for issue, email, when in delivered(project) if issue == row.id}
    assert set(got) == set(zones)
    for email, when in got.items():
        due = expected_instant(row.slot, zones[email])
        assert when == max(due, back), email  # the overdue waves at once, the others on time
