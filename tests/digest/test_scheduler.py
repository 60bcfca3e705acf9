"""The scheduler process: one per database, jobs kept across restarts, missed slots run once
or recorded. APScheduler itself runs here (a BackgroundScheduler, and the real `digest
scheduler` in two processes); slots are placed minutes in the past so nothing waits for one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from digest import db
from digest import scheduler as scheduler_face
from digest.app.wiring import Project, utc_now
from digest.config import Config, load_config
from digest.events import apply_events
from digest.schedule import SchedulerBusy, acquire_lock
from digest.scheduler import BOUNCES_JOB, PRUNE_JOB, SchedulerService, job_id
from digest.stores import engagement
from digest.stores import issues as issue_store
from subscribers.importer import parse_csv, topic_resolver
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock

ROOT = Path(__file__).parents[3]


def use(project: Project, **changes: Any) -> None:
    digest = project.config.digests[0].model_copy(update=changes)
    project.config = replace(
        project.config, file=project.config.file.model_copy(update={"digests": [digest]})
    )


def with_readers(project: Project) -> Project:
    csv = project.config.base_dir / "subscribers.csv"
    with csv.open(encoding="utf-8", newline="") as handle:
        parsed = parse_csv(handle, topic_resolver((t.slug, t.name) for t in project.topics()))
    with project.engine.begin() as conn:
        SubscriberStore(conn).upsert(parsed.rows, project.clock(), "test")
    return project


def log_rows(project: Project) -> list[issue_store.ScheduleLogRow]:
    with project.engine.connect() as conn:
        return list(reversed(issue_store.schedule_log(conn, "weekly", limit=100)))


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the scheduler"
        time.sleep(0.1)


@pytest.fixture
def stopping() -> Iterator[list[SchedulerService]]:
    services: list[SchedulerService] = []
    yield services
    for service in services:
        service.stop(wait=False)


def seed_jobs(project: Project, now: datetime, services: list[SchedulerService]) -> None:
    """A scheduler that ran at ``now`` and stopped: its jobs stay in the store."""
    service = SchedulerService(project)
    services.append(service)
    service.scheduler.start(paused=True)
    service.sync(now)
    service.stop(wait=False)


# one scheduler per database ---------------------------------------------------------------


def test_only_one_scheduler_holds_the_lock_of_a_database(engine: Engine) -> None:
    first = acquire_lock(engine)
    try:
        with pytest.raises(SchedulerBusy, match="another `digest scheduler` is already running"):
            acquire_lock(engine)
    finally:
        first.release()
    second = acquire_lock(engine)  # released means free again
    assert second.alive()
    second.release()


# restarts ---------------------------------------------------------------------------------

T0 = datetime(2026, 11, 20, 6, tzinfo=UTC)


def test_a_restart_keeps_missed_slots_due_and_records_the_coalesced_ones(
    example_project: Project, stopping: list[SchedulerService]
) -> None:
    use(example_project, schedule="0 8 * * *")  # daily 08:00 Berlin = 07:00 UTC
    seed_jobs(example_project, T0, stopping)
    back = T0 + timedelta(days=3, hours=3)  # 20, 21, 22 and 23 November fell due meanwhile
    service = SchedulerService(example_project)
    stopping.append(service)
    service.scheduler.start(paused=True)
    notes = service.sync(back)
    job = service.scheduler.get_job(job_id("weekly"))
    assert job.next_run_time == datetime(2026, 11, 20, 7, tzinfo=UTC)  # still due: runs once
    missed = [(r.slot, r.kind) for r in log_rows(example_project)]
    assert missed == [(datetime(2026, 11, d, 7, tzinfo=UTC), "missed") for d in (20, 21, 22)]
    assert len(notes) == 3 and "ran the slot of 2026-11-23 07:00 UTC instead" in notes[0]


def test_a_changed_schedule_starts_afresh_and_removed_digests_lose_their_jobs(
    example_project: Project, stopping: list[SchedulerService]
) -> None:
    use(example_project, approval="require", notify=["ed@example.com"])
    seed_jobs(example_project, T0, stopping)
    use(example_project, schedule="0 9 * * *", approval="auto")
    service = SchedulerService(example_project)
    stopping.append(service)
    service.scheduler.start(paused=True)
    notes = service.sync(T0 + timedelta(days=2))
    times = service.next_run_times()
    del times[PRUNE_JOB]  # always there; its own test below
    assert times == {job_id("weekly"): datetime(2026, 11, 22, 8, tzinfo=UTC)}  # 09:00 CET
    assert notes == ["removed job digest:weekly:notify: its digest is no longer configured"]
    assert log_rows(example_project) == []


def use_bounces(project: Project, **settings: Any) -> None:
    bounces = project.config.file.bounces.model_copy(update=settings)
    project.config = replace(
        project.config, file=project.config.file.model_copy(update={"bounces": bounces})
    )


def test_a_configured_bounce_mailbox_is_read_by_a_job_of_its_own(
    example_project: Project, stopping: list[SchedulerService], caplog: pytest.LogCaptureFixture
) -> None:
    use_bounces(
        example_project,
        address="bounces@northwind.example",
        imap_host="127.0.0.1",
        imap_port=1,  # nothing listens: the job's failure is logged, not raised
        imap_user="bounces",
        imap_tls="none",
        fetch_minutes=5,
    )
    service = SchedulerService(example_project)
    stopping.append(service)
    service.scheduler.start(paused=True)
    assert service.sync(T0) == []
    times = service.next_run_times()
    assert times[BOUNCES_JOB] == T0 + timedelta(minutes=5)
    assert times[job_id("weekly")] is not None
    service.fetch_bounces()
    assert "reading the bounce mailbox failed" in caplog.text
    service.stop(wait=False)

    use_bounces(example_project, imap_host=None)  # the mailbox is no longer configured
    later = SchedulerService(example_project)
    stopping.append(later)
    later.scheduler.start(paused=True)
    later.sync(T0)
    assert BOUNCES_JOB not in later.next_run_times()
    assert log_rows(example_project) == []  # not a digest's slot: nothing in the schedule log


def test_raw_events_are_pruned_by_a_daily_job_without_any_webhook_traffic(
    example_project: Project,
    clock: FixedClock,
    stopping: list[SchedulerService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db.upgrade(example_project.engine)
    clock.now = T0
    with example_project.transaction() as conn:
        for age, prefix in ((31, "old"), (29, "recent")):  # [events] keep_days is 30
            events = [
                {"event": "delivered", "email": "a@example.com", "sg_event_id": f"{prefix}-{i}"}
                for i in range(3)
            ]
            apply_events(conn, events, T0 - timedelta(days=age))
    service = SchedulerService(example_project)
    stopping.append(service)
    service.scheduler.start(paused=True)
    assert service.sync(T0) == []
    assert service.next_run_times()[PRUNE_JOB] == datetime(2026, 11, 21, 3, 17, tzinfo=UTC)
    job = service.scheduler.get_job(PRUNE_JOB)
    monkeypatch.setattr(scheduler_face, "_service", service)
    job.func(*job.args)  # what APScheduler calls when it falls due
    with example_project.reading() as conn:
        assert engagement.raw_count(conn) == 3
    service.stop(wait=False)

    back = T0 + timedelta(days=3)  # no scheduler ran through three prunings: one, at once
    later = SchedulerService(example_project)
    stopping.append(later)
    later.scheduler.start(paused=True)
    assert later.sync(back) == []
    assert later.next_run_times()[PRUNE_JOB] == back
    assert log_rows(example_project) == []  # not a digest's slot: nothing in the schedule log


# APScheduler running for real ---------------------------------------------------------------


def minute_slot_project(project: Project, grace_hours: float) -> tuple[Project, datetime]:
    """An hourly schedule whose latest slot was about five minutes ago (and whose next one is
    about 55 minutes away), the real clock, readers."""
    project.clock = utc_now
    now = utc_now()
    slot = (now - timedelta(minutes=5)).replace(second=0, microsecond=0)
    use(project, schedule=f"{slot.minute} * * * *", misfire_grace_hours=grace_hours)
    return with_readers(project), slot


def test_after_downtime_the_missed_slot_runs_once_within_the_grace(
    example_project: Project, stopping: list[SchedulerService]
) -> None:
    project, slot = minute_slot_project(example_project, grace_hours=6)
    seed_jobs(project, slot - timedelta(minutes=1), stopping)
    service = SchedulerService(project)
    stopping.append(service)
    service.start()
    wait_for(lambda: any(r.kind == "ran" for r in log_rows(project)))
    service.stop()
    [ran] = log_rows(project)
    assert (ran.kind, ran.slot) == ("ran", slot)
    with project.engine.connect() as conn:
        issues = conn.execute(select(db.issues.c.slot)).scalars().all()
    assert issues == [slot]


def test_a_slot_missed_beyond_the_grace_is_recorded_not_run(
    example_project: Project, stopping: list[SchedulerService]
) -> None:
    project, slot = minute_slot_project(example_project, grace_hours=0.01)  # 36 seconds
    seed_jobs(project, slot - timedelta(minutes=1), stopping)
    service = SchedulerService(project)
    stopping.append(service)
    service.start()
    wait_for(lambda: bool(log_rows(project)))
    service.stop()
    [missed] = log_rows(project)
    assert (missed.kind, missed.slot) == ("missed", slot)
    assert missed.detail == (
        "run missed: the scheduler came back more than 36 s after it (misfire grace); "
        "`digest run` sends it by hand"
    )
    with project.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.issues)).scalar_one() == 0


# two real scheduler processes ----------------------------------------------------------------


def test_two_scheduler_processes_on_one_database_send_once(
    example_config: Config, engine: Engine, stopping: list[SchedulerService]
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    config_path = example_config.path
    config_path.write_text(
        f'database_url = "{url}"\n' + config_path.read_text(encoding="utf-8"), encoding="utf-8"
    )
    config = load_config(
        config_path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
    )
    project = Project.open(config, clock=FixedClock(utc_now()), engine=engine)
    project, slot = minute_slot_project(project, grace_hours=6)
    config_path.write_text(
        config_path.read_text(encoding="utf-8").replace(
            'schedule = "0 8 * * mon"', f'schedule = "{slot.minute} * * * *"'
        ),
        encoding="utf-8",
    )
    seed_jobs(project, slot - timedelta(minutes=1), stopping)

    env = {
        **os.environ,
        "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "digest", "scheduler", "--config", str(config_path)]
    processes = [
        subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Started as a script's background job is (SIGINT ignored), which Python would
            # keep: the scheduler must still stop on Ctrl-C.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
        for _ in range(2)
    ]
    try:
        wait_for(lambda: any(p.poll() is not None for p in processes))
        loser = next(p for p in processes if p.poll() is not None)
        winner = next(p for p in processes if p is not loser)
        _, loser_err = loser.communicate()
        assert loser.returncode == 3, loser_err
        assert "another `digest scheduler` is already running on this database" in loser_err
        wait_for(lambda: any(r.kind == "ran" for r in log_rows(project)))
        winner.send_signal(signal.SIGINT)
        winner_out, winner_err = winner.communicate(timeout=60)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert winner.returncode == 0, winner_err
    assert "Scheduler stopped." in winner_out
    [ran] = [r for r in log_rows(project) if r.kind == "ran"]
    with project.engine.connect() as conn:
        issues = conn.execute(select(db.issues.c.id)).scalars().all()
        delivered = conn.execute(
            select(func.count(), func.count(db.deliveries.c.subscriber_id.distinct()))
        ).one()
    assert len(issues) == 1 and ran.slot == slot
    assert delivered[0] == delivered[1] > 0
    assert f"{delivered[0]} submitted" in ran.detail
    outbox = sorted(config.outbox_dir.rglob("*.eml"))
    assert len(outbox) == delivered[0]


# cadences ---------------------------------------------------------------------------------


def test_each_cadence_has_its_own_run_and_approval_jobs_and_log_entries(
    example_project: Project, stopping: list[SchedulerService]
) -> None:
    use(
        example_project,
        cadences={"daily": "0 8 * * *", "weekly": "0 8 * * mon"},
        default_cadence="weekly",
        approval="require",
        notify=["ed@example.com"],
    )
    seed_jobs(example_project, T0, stopping)  # Friday 20 November
    service = SchedulerService(example_project)
    stopping.append(service)
    service.scheduler.start(paused=True)
    notes = service.sync(T0 + timedelta(days=3, hours=3))  # Monday 23 November, 09:00 UTC
    times = service.next_run_times()
    del times[PRUNE_JOB]
    assert set(times) == {
        "digest:weekly:daily",
        "digest:weekly:daily:notify",
        "digest:weekly:weekly",
        "digest:weekly:weekly:notify",
    }
    assert times[job_id("weekly", cadence="daily")] == datetime(2026, 11, 20, 7, tzinfo=UTC)
    assert times[job_id("weekly", cadence="weekly")] == datetime(2026, 11, 23, 7, tzinfo=UTC)
    missed = [(r.cadence, r.slot) for r in log_rows(example_project) if r.kind == "missed"]
    assert ("daily", datetime(2026, 11, 21, 7, tzinfo=UTC)) in missed
    assert all(cadence in ("daily", "weekly") for cadence, _ in missed)
    assert notes
    for ident in times:
        parsed = scheduler_face._parse_job_id(ident)
        assert parsed is not None
        slug, kind, cadence = parsed
        assert job_id(slug, kind, cadence) == ident


def test_a_local_delivery_cadence_fires_where_its_wall_time_comes_first(
    example_project: Project, stopping: list[SchedulerService]
) -> None:
    use(example_project, schedule="0 8 * * mon", local_delivery=True)
    service = SchedulerService(example_project)
    stopping.append(service)
    service.scheduler.start(paused=True)
    service.sync(T0)
    # Monday 08:00 at UTC+14 (Pacific/Kiritimati) is Sunday 18:00 UTC
    assert service.next_run_times()[job_id("weekly")] == datetime(2026, 11, 22, 18, tzinfo=UTC)
