"""The scheduler: when each digest runs, what a run does, and the one process that runs them.

Three layers, each testable on its own:

* **Decisions (pure).** :func:`gate` turns (approval policy, approval state, now, slot, lead)
  into an :class:`Action`; :func:`catch_up` says which of the slots due after downtime runs
  (the newest, within the misfire grace) and which were missed; :func:`dst_edges` finds
  wall-clock times a schedule names that do not exist, or happen twice, in the next year.
* **The job body.** :func:`run_slot` is what runs for one digest and one slot: gather → plan
  (idempotent per slot) → approval gate → send, notify, wait, skip or hold. It takes the
  project (whose clock is injected) and the slot, so tests drive it without waiting for time.
* **Wiring.** :class:`SchedulerService` puts one job per digest (plus an approval-request job
  for ``require`` digests) into an APScheduler ``SQLAlchemyJobStore`` in the project database,
  under a lock that lets exactly one scheduler run per database (:func:`acquire_lock`).

Why not let APScheduler do all of it: its default misfire grace is one second (a restart a
minute late silently skips the week's issue), ``add_job(replace_existing=True)`` on restart
recomputes the next run from *now* (so the slots missed while down are neither run nor
reported), and with ``coalesce`` the older missed slots vanish without an event. Each of
those is handled here and recorded in ``schedule_log``.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import IO, Literal, Protocol
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection, Engine, func, select, text

from digest import db, repository
from digest.config import Config, DigestConfig
from digest.errors import DigestError
from digest.pipeline import Planned, Project
from digest.send import SendReport
from digest.send.message import compose

log = logging.getLogger("digest.schedule")

JOB_TABLE = "apscheduler_jobs"
JobKind = Literal["run", "notify"]
RUN: JobKind = "run"
NOTIFY: JobKind = "notify"
ONE_MICROSECOND = timedelta(microseconds=1)


# Slots ----------------------------------------------------------------------------------------


def cron_trigger(digest: DigestConfig) -> CronTrigger:
    """The digest's schedule: cron fields read as wall-clock time in the digest's zone."""
    return CronTrigger.from_crontab(digest.schedule, timezone=digest.zone)


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


def next_slot(digest: DigestConfig, now: datetime) -> datetime | None:
    found = cron_trigger(digest).get_next_fire_time(None, now)
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


# The approval gate (pure) -------------------------------------------------------------------


class Action(StrEnum):
    SEND = "send"
    """Send the issue now."""
    NOTIFY = "notify"
    """Ask the editors to approve it (``require``, before the slot)."""
    WAIT = "wait"
    """Nothing to do yet: before the slot (or before the approval request is due)."""
    SKIP = "skip"
    """Not approved by the slot: never sent, its posts go into the next issue."""
    HOLD = "hold"
    """Never sent by the scheduler; an editor sends it."""


def gate(policy: str, approval: str, now: datetime, slot: datetime, lead: timedelta) -> Action:
    """What the scheduler does with an issue at ``now``, for the slot it is meant for.

    An editor's decision (approved, held, skipped) wins over the digest's policy; the policy
    decides for issues nobody has looked at (``none``). The slot is the deadline: approval
    after it comes too late, and the issue is skipped rather than sent late.
    """
    if approval == repository.APPROVAL_SKIPPED:
        return Action.SKIP
    if approval == repository.APPROVAL_HELD:
        return Action.HOLD
    if now < slot - lead:
        return Action.WAIT
    if approval == repository.APPROVAL_APPROVED:
        return Action.SEND if now >= slot else Action.WAIT
    if approval == repository.APPROVAL_PENDING:
        return Action.WAIT if now < slot else Action.SKIP
    if policy == "hold":
        return Action.HOLD
    if policy == "require":
        return Action.NOTIFY if now < slot else Action.SKIP
    return Action.SEND if now >= slot else Action.WAIT


# The job body ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotOutcome:
    """What one run of a slot did; also written to ``schedule_log`` (``kind`` and ``detail``)."""

    digest: str
    slot: datetime
    kind: str
    """ran, notified, waiting, skipped, held, nothing, failed"""
    detail: str
    issue_id: int | None = None
    issue_number: int | None = None
    report: SendReport | None = None

    @property
    def submitted(self) -> int:
        return self.report.submitted if self.report else 0


def run_slot(project: Project, digest_slug: str, slot: datetime) -> SlotOutcome:
    """One scheduled run of a digest for ``slot``: gather → plan → approval gate → act.

    Idempotent per (digest, slot): the slot's issue is planned once (unique in the database)
    and a rerun of a slot whose issue was sent or skipped does nothing. Called at the slot by
    the run job, and ``approval_lead_hours`` before it by a ``require`` digest's request job
    (the gate tells the two apart by the time). Tests and the editor app call it directly.
    """
    digest = project.config.digest(digest_slug)
    slot = slot.astimezone(UTC)
    outcome = _run_slot(project, digest, slot)
    with project.engine.begin() as conn:
        repository.log_schedule(
            conn, digest.slug, slot, outcome.kind, outcome.detail, project.clock()
        )
    log.info("%s %s: %s: %s", digest.slug, _both(slot, digest.zone), outcome.kind, outcome.detail)
    return outcome


def _run_slot(project: Project, digest: DigestConfig, slot: datetime) -> SlotOutcome:
    def outcome(kind: str, detail: str, row: repository.IssueRow | None = None) -> SlotOutcome:
        return SlotOutcome(
            digest.slug, slot, kind, detail, row.id if row else None, row.number if row else None
        )

    if is_repeat(slot, digest.zone):
        local = slot.astimezone(digest.zone)
        return outcome(
            "nothing", f"{local:%H:%M} happened twice (clocks went back); this is the repeat"
        )
    with project.engine.connect() as conn:
        mine = repository.issue_for_slot(conn, digest.slug, slot)
        later = _latest_slot_with_issue(conn, digest.slug)
    if mine is not None and mine.status in (repository.ISSUE_SENT, repository.ISSUE_SKIPPED):
        return outcome("nothing", f"issue {mine.number} of this slot was {mine.status} already")
    if mine is None and later is not None and later > slot:
        return outcome("nothing", f"a later slot ({later:%Y-%m-%d %H:%M} UTC) has its issue")
    resumed = _settle_earlier(project, digest, slot)
    if mine is None:
        gathered = project.gather()
        failed = ", ".join(s.job.name for s in gathered.failed)
        if failed:
            log.warning("%s: sources failed: %s", digest.slug, failed)
    planned = project.plan(digest.slug, slot=slot)
    if planned is None:
        return outcome("nothing", "nothing new since the last issue" + resumed)
    assert planned.issue.id is not None
    with project.engine.begin() as conn:
        row = repository.issue_row(conn, planned.issue.id)
        if row.slot is None and repository.attach_slot(conn, row.id, slot):
            row = repository.issue_row(conn, row.id)  # made by hand: now this slot's issue
    now = project.clock()
    deadline = row.slot or slot
    action = gate(digest.approval, row.approval, now, deadline, digest.approval_lead)
    number = row.number
    if action is Action.SEND:
        report = project.deliver(planned)
        detail = f"issue {number}: {report.submitted} submitted, {report.failed} failed"
        if report.ambiguous:
            detail += f", {report.ambiguous} ambiguous (not re-sent)"
        if not report.finished:
            detail += " (unfinished: the next run resumes it)"
        result = outcome("ran", detail + resumed, row)
        return SlotOutcome(**{**result.__dict__, "report": report})
    if action is Action.NOTIFY:
        return _notify(project, digest, planned, deadline, row)
    if action is Action.WAIT:
        local = deadline.astimezone(digest.zone)
        why = "approval" if row.approval == repository.APPROVAL_PENDING else "its slot"
        return outcome(
            "waiting", f"issue {number} waits for {why} (until {local:%a %H:%M %Z})", row
        )
    if action is Action.SKIP:
        if row.approval != repository.APPROVAL_SKIPPED:
            asked = row.approval == repository.APPROVAL_PENDING
            note = "not approved by its slot" + ("" if asked else " (no editor was asked in time)")
            with project.engine.begin() as conn:
                repository.set_approval(
                    conn, row.id, repository.APPROVAL_SKIPPED, None, project.clock(), note
                )
        return outcome(
            "skipped",
            f"issue {number} was not approved by its slot; its posts go into the next",
            row,
        )
    if row.approval != repository.APPROVAL_HELD:
        with project.engine.begin() as conn:
            repository.set_approval(
                conn,
                row.id,
                repository.APPROVAL_HELD,
                None,
                project.clock(),
                f"approval policy {digest.approval!r}: an editor sends it",
            )
    return outcome(
        "held",
        f"issue {number} is held: an editor sends it (approve it in the editor app, "
        "or `digest send --force`)",
        row,
    )


def _latest_slot_with_issue(conn: Connection, digest: str) -> datetime | None:
    found = conn.execute(
        select(func.max(db.issues.c.slot)).where(db.issues.c.digest == digest)
    ).scalar_one()
    return db.UtcDateTime().process_result_value(found, conn.dialect) if found else None


def _settle_earlier(project: Project, digest: DigestConfig, slot: datetime) -> str:
    """Deal with an unfinished issue from before this slot, so the slot can have its own.

    A send a crash left half done is resumed (it was allowed to start, and the ledger makes the
    rest exactly once). An issue of an earlier slot that never went out is skipped: its slot
    passed, and this slot's issue takes its posts. A held or hand-made issue stays: an editor
    decides about those, and the slot gets it back from ``plan``.
    """
    with project.engine.connect() as conn:
        earlier = repository.unfinished_issue(conn, digest.slug)
    if earlier is None or earlier.slot == slot:
        return ""
    if earlier.status == repository.ISSUE_SENDING:
        planned = Planned(project.issue(earlier.id), False, {}, earlier.approval, earlier.slot)
        report = project.deliver(planned)
        return f"; resumed issue {earlier.number}: {report.submitted} more submitted"
    if earlier.slot is not None and earlier.slot < slot:
        if earlier.approval == repository.APPROVAL_HELD:
            return ""
        note = f"its slot passed without a send; the slot of {slot:%Y-%m-%d %H:%M} UTC replans"
        with project.engine.begin() as conn:
            repository.set_approval(
                conn, earlier.id, repository.APPROVAL_SKIPPED, None, project.clock(), note
            )
            repository.log_schedule(
                conn,
                digest.slug,
                earlier.slot,
                "skipped",
                f"issue {earlier.number}: {note}",
                project.clock(),
            )
    return ""


def editor_url(public_url: str, issue_id: int) -> str:
    """The editor app's page of one issue (served by the editor web app)."""
    return f"{public_url}/editor/issues/{issue_id}"


def _notify(
    project: Project,
    digest: DigestConfig,
    planned: Planned,
    slot: datetime,
    row: repository.IssueRow,
) -> SlotOutcome:
    """Email each editor on ``notify`` a link to the issue, then mark it pending.

    Pending is set even when mail fails: the issue then waits in the editor app, and the
    failure is in the outcome, so the dashboard says why nobody heard of it."""
    config = project.config
    issue = planned.issue
    link = editor_url(config.site.public_url, row.id)
    when = _both(slot, digest.zone)
    subject = f"Please approve {digest.name}, issue {issue.number}, before {when}"
    topics = ", ".join(s.topic.name for s in issue.sections)
    lines = [
        f"Issue {issue.number} of {digest.name} is planned for {when}:",
        f"{issue.post_count} posts in {topics}, for {planned.recipients} readers.",
        "",
        f"Review and approve it: {link}",
        "",
        "If nobody approves it by then, it is skipped and its posts go into the next issue.",
    ]
    body = "\n".join(lines)
    page = "".join(f"<p>{html.escape(line)}</p>" for line in lines if line and link not in line)
    page += f'<p><a href="{html.escape(link)}">Review and approve issue {issue.number}</a></p>'
    sending = config.sending
    sender = Address(sending.from_name, addr_spec=sending.from_email)
    mailer = project.mailer()
    failed: list[str] = []
    for editor in digest.notify:
        name, address = parseaddr(editor)
        message = compose(
            sender, Address(name, addr_spec=address), subject, body, page, project.clock()
        )
        try:
            mailer(message)
        except (DigestError, OSError) as err:
            failed.append(f"{address}: {err}")
    with project.engine.begin() as conn:
        repository.set_approval(
            conn,
            row.id,
            repository.APPROVAL_PENDING,
            None,
            project.clock(),
            f"approval requested from {', '.join(digest.notify)}",
        )
    asked = len(digest.notify) - len(failed)
    if asked == 0:
        detail = f"issue {issue.number} waits for approval, but no editor could be emailed: "
        return SlotOutcome(
            digest.slug, slot, "failed", detail + "; ".join(failed), row.id, issue.number
        )
    detail = f"issue {issue.number}: asked {asked} editor(s) to approve by {when}"
    if failed:
        detail += f"; could not email {'; '.join(failed)}"
    return SlotOutcome(digest.slug, slot, "notified", detail, row.id, issue.number)


def _both(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M %Z} ({moment.astimezone(UTC):%H:%M} UTC)"


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
                f"{_hours(self.shift)}): {then}"
            )
        if len(shown) > 1:
            then = (
                f"APScheduler fires at {' and again at '.join(shown)}; the digest runs the "
                "first and records the second as a repeat, sending nothing"
            )
        else:
            then = f"APScheduler runs it once, at {shown[0]}" if shown else "it does not run"
        return f"{at} happens twice in {self.zone} (clocks go back {_hours(self.shift)}): {then}"


def _local_and_utc(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%H:%M %Z} ({moment.astimezone(UTC):%H:%M} UTC)"


def _hours(delta: timedelta) -> str:
    """A duration as people say it: 1 h, 90 min, 36 s."""
    seconds = abs(int(delta.total_seconds()))
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def dst_edges(digest: DigestConfig, now: datetime, days: int = 366) -> list[DstEdge]:
    """Times the schedule names that do not exist, or exist twice, in the next ``days``.

    The days clocks change are found from the zone's offsets; the wall times the cron names
    on such a day come from the same cron read in UTC (which has no DST, so it lists wall
    times as written); what APScheduler does with each comes from the digest's real trigger.
    """
    zone = digest.zone
    trigger = cron_trigger(digest)
    wall_clock = CronTrigger.from_crontab(digest.schedule, timezone=UTC)
    edges: list[DstEdge] = []
    for day in _change_days(zone, now.astimezone(zone).date(), days):
        midnight = datetime.combine(day, time(), UTC)
        named = [
            t.replace(tzinfo=None)
            for t in slots_between(wall_clock, midnight - ONE_MICROSECOND, midnight + _DAY)
            if t.date() == day
        ]
        named_times = {t.time() for t in named}
        for naive in named:
            first, second = naive.replace(tzinfo=zone), naive.replace(tzinfo=zone, fold=1)
            shift = (second.utcoffset() or timedelta()) - (first.utcoffset() or timedelta())
            if not shift:
                continue
            exists = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive
            instants = {first.astimezone(UTC), second.astimezone(UTC)}
            window = slots_between(trigger, min(instants) - _DAY, max(instants) + _DAY)
            fires = tuple(f for f in window if f in instants)
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

    @property
    def local(self) -> datetime | None:
        return self.at.astimezone(ZoneInfo(self.timezone)) if self.at else None


def next_runs(config: Config, now: datetime) -> list[NextRun]:
    """Each digest's next slot, in its zone and in UTC, with its DST edges for a year."""
    runs = []
    for digest in config.digests:
        at = next_slot(digest, now)
        ask_at = None
        if digest.approval == "require":
            ask = LeadTrigger(cron_trigger(digest), digest.approval_lead)
            found = ask.get_next_fire_time(None, now)
            ask_at = found.astimezone(UTC) if found else None
        runs.append(
            NextRun(
                digest.slug,
                digest.name,
                digest.schedule,
                digest.timezone,
                digest.approval,
                at,
                ask_at,
                digest.misfire_grace,
                tuple(dst_edges(digest, now)),
            )
        )
    return runs


next_slots = next_runs
"""The name the editor contract uses."""


# One scheduler per database --------------------------------------------------------------------


class SchedulerBusy(DigestError):
    """Another scheduler holds the lock on this database."""


class SchedulerLock(Protocol):
    def alive(self) -> bool: ...

    def release(self) -> None: ...


LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"digest-generator scheduler").digest()[:8], "big", signed=True
)
"""The PostgreSQL advisory lock key (advisory locks are per database)."""


class PostgresLock:
    """``pg_try_advisory_lock`` on a connection held for the scheduler's life: if the process
    dies, the server ends the session and the lock with it."""

    def __init__(self, engine: Engine) -> None:
        self.conn = engine.connect()
        got = self.conn.execute(select(func.pg_try_advisory_lock(LOCK_KEY))).scalar_one()
        self.conn.commit()
        if not got:
            holder = self.conn.execute(
                text(
                    "SELECT a.pid, a.backend_start FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND CAST(l.classid AS bigint) = :high AND CAST(l.objid AS bigint) = :low"
                ).bindparams(high=(LOCK_KEY >> 32) & 0xFFFFFFFF, low=LOCK_KEY & 0xFFFFFFFF)
            ).first()
            self.conn.rollback()
            self.conn.close()
            who = (
                f" (server process {holder.pid} since {holder.backend_start:%Y-%m-%d %H:%M})"
                if holder is not None
                else ""
            )
            raise SchedulerBusy(
                "another `digest scheduler` is already running on this database"
                + who
                + ": only one may run, or every issue would go out twice",
                where=engine.url.render_as_string(hide_password=True),
            )

    def alive(self) -> bool:
        try:
            self.conn.execute(text("SELECT 1")).scalar_one()
            self.conn.commit()
        except Exception:  # the connection (and so the lock) is gone
            return False
        return True

    def release(self) -> None:
        try:
            self.conn.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
            self.conn.commit()
        finally:
            self.conn.close()


class FileLock:
    """An exclusive ``flock`` on ``<database>.scheduler.lock`` beside the SQLite file. The
    kernel drops it when the process dies, so a crash never leaves a stale lock."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".scheduler.lock")
        self.handle: IO[str] = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip()
            self.handle.close()
            raise SchedulerBusy(
                "another `digest scheduler` is already running on this database"
                + (f" (pid {holder})" if holder else "")
                + ": only one may run, or every issue would go out twice",
                where=str(database),
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()

    def alive(self) -> bool:
        return not self.handle.closed

    def release(self) -> None:
        if not self.handle.closed:
            self.handle.seek(0)
            self.handle.truncate()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def scheduler_running(engine: Engine) -> bool:
    """Whether some process holds the scheduler lock (tried and, if taken, released at once)."""
    try:
        acquire_lock(engine).release()
    except SchedulerBusy:
        return True
    return False


def acquire_lock(engine: Engine) -> SchedulerLock:
    """The lock that makes this process the only scheduler of the database, or SchedulerBusy.

    Two schedulers on one job store run every job twice; the unique (digest, slot) would keep
    the issue single, but two runs still race to gather and to mail editors."""
    if engine.dialect.name == "postgresql":
        return PostgresLock(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLock(Path(database))
    raise DigestError(
        "the scheduler needs a SQLite database file or PostgreSQL", where="database_url"
    )


# APScheduler wiring ----------------------------------------------------------------------------


def job_id(digest_slug: str, kind: JobKind = RUN) -> str:
    return f"digest:{digest_slug}" if kind == RUN else f"digest:{digest_slug}:{kind}"


def _parse_job_id(value: str) -> tuple[str, JobKind] | None:
    parts = value.split(":")
    if parts[0] != "digest" or len(parts) not in (2, 3):
        return None
    kind: JobKind = NOTIFY if len(parts) == 3 and parts[2] == NOTIFY else RUN
    return parts[1], kind


@dataclass(frozen=True)
class JobSpec:
    """One job the config asks for."""

    id: str
    digest: str
    kind: JobKind
    trigger: BaseTrigger
    grace: timedelta


def job_specs(config: Config) -> list[JobSpec]:
    """One run job per digest; ``require`` digests also get the approval-request job, whose
    grace is the whole lead (a late request is still worth sending until the slot)."""
    specs = []
    for digest in config.digests:
        cron = cron_trigger(digest)
        specs.append(JobSpec(job_id(digest.slug), digest.slug, RUN, cron, digest.misfire_grace))
        if digest.approval == "require":
            specs.append(
                JobSpec(
                    job_id(digest.slug, NOTIFY),
                    digest.slug,
                    NOTIFY,
                    LeadTrigger(cron, digest.approval_lead),
                    digest.approval_lead,
                )
            )
    return specs


class GuardedScheduler(BackgroundScheduler):  # type: ignore[misc]  # APScheduler 3 is untyped
    """APScheduler 3.11's loop processes jobs once more after ``shutdown()``: it checks the
    state before waiting, not after, so the wake-up from shutdown submits any due job to the
    stopped executor (an error) and moves the job's next run time on. A slot falling due at
    Ctrl-C would be lost without a trace. This scheduler does nothing once stopped."""

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        result: float | None = super()._process_jobs()
        return result


_service: SchedulerService | None = None
"""The service of this process; the stored jobs call back into it (APScheduler stores a
reference to :func:`scheduled_job` and its arguments, never a Project)."""


def scheduled_job(digest_slug: str, kind: str) -> None:
    """What APScheduler calls. Runs in the executor's thread."""
    if _service is None:
        raise RuntimeError("no SchedulerService is running in this process")
    _service.fire(digest_slug, NOTIFY if kind == NOTIFY else RUN)


class SchedulerService:
    """APScheduler on the project database, its jobs kept in step with the config.

    ``scheduler_factory`` exists for tests; the CLI uses the default BackgroundScheduler and
    waits on it in the main thread, so Ctrl-C reaches us and stops it cleanly.
    """

    def __init__(
        self,
        project: Project,
        scheduler_factory: Callable[..., BackgroundScheduler] = GuardedScheduler,
    ) -> None:
        self.project = project
        self.specs = {spec.id: spec for spec in job_specs(project.config)}
        self.scheduler = scheduler_factory(
            jobstores={"default": SQLAlchemyJobStore(engine=project.engine, tablename=JOB_TABLE)},
            executors={"default": ThreadPoolExecutor(max(1, len(self.project.config.digests)))},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self.scheduler.add_listener(
            self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_ERROR
        )
        self.stopped = threading.Event()

    def start(self) -> list[str]:
        """Start, sync the stored jobs with the config, record slots missed while down."""
        global _service
        _service = self
        self.scheduler.start(paused=True)
        notes = self.sync(self.project.clock())
        self.scheduler.resume()
        return notes

    def sync(self, now: datetime) -> list[str]:
        """Put every configured job in the store; keep a stored job's next run time when its
        trigger is unchanged, so a slot that fell due while no scheduler ran is still due
        (APScheduler then runs the newest one within the grace, and reports the rest)."""
        notes: list[str] = []
        stored = {job.id: job for job in self.scheduler.get_jobs()}
        for spec in self.specs.values():
            old = stored.get(spec.id)
            same = old is not None and repr(old.trigger) == repr(spec.trigger)
            next_run = old.next_run_time if same and old is not None else None
            if next_run is None:
                next_run = spec.trigger.get_next_fire_time(None, now)
            elif next_run <= now:
                notes += self._record_missed(
                    spec, slots_between(spec.trigger, next_run - ONE_MICROSECOND, now), now
                )
            self.scheduler.add_job(
                scheduled_job,
                trigger=spec.trigger,
                args=[spec.digest, spec.kind],
                id=spec.id,
                name=f"{spec.kind} {spec.digest}",
                replace_existing=True,
                misfire_grace_time=int(spec.grace.total_seconds()),
                coalesce=True,
                max_instances=1,
                next_run_time=next_run,
            )
        for old_id in stored.keys() - self.specs.keys():
            if _parse_job_id(old_id) is not None:
                self.scheduler.remove_job(old_id)
                notes.append(f"removed job {old_id}: its digest is no longer configured")
        return notes

    def _record_missed(self, spec: JobSpec, due: list[datetime], now: datetime) -> list[str]:
        """Slots coalesced away: APScheduler runs only the newest due one (or reports it
        missed, past the grace) and says nothing about the others. Record them here."""
        plan = catch_up(due, now, spec.grace)
        coalesced = due[:-1]
        notes = []
        with self.project.engine.begin() as conn:
            for slot in coalesced:
                shown = self._slot_of(spec, slot)
                then = f"ran the slot of {due[-1]:%Y-%m-%d %H:%M} UTC instead" if plan.run else ""
                detail = (
                    f"{'approval request' if spec.kind == NOTIFY else 'run'} missed: "
                    f"no scheduler was running; {then or 'every due slot was past the grace'}"
                )
                repository.log_schedule(conn, spec.digest, shown, "missed", detail, now)
                notes.append(f"{spec.digest} {shown:%Y-%m-%d %H:%M} UTC: {detail}")
        return notes

    def _slot_of(self, spec: JobSpec, fire: datetime) -> datetime:
        fire = fire.astimezone(UTC)
        return fire + spec.trigger.lead if isinstance(spec.trigger, LeadTrigger) else fire

    def fire(self, digest_slug: str, kind: JobKind) -> SlotOutcome | None:
        """A job fired: find its slot from the clock and run it."""
        spec = self.specs.get(job_id(digest_slug, kind))
        if spec is None:
            log.warning("job %s:%s is not configured any more; ignored", digest_slug, kind)
            return None
        now = self.project.clock()
        fired = latest_slot(spec.trigger, now, spec.grace + timedelta(minutes=1))
        if fired is None:
            log.warning("%s fired at %s with no slot within the grace; ignored", spec.id, now)
            return None
        slot = self._slot_of(spec, fired)
        try:
            return run_slot(self.project, digest_slug, slot)
        except Exception as err:
            log.exception("%s: the run of %s failed", digest_slug, slot)
            with self.project.engine.begin() as conn:
                repository.log_schedule(
                    conn, digest_slug, slot, "failed", f"{type(err).__name__}: {err}", now
                )
            return None

    def _on_event(self, event: JobEvent) -> None:
        parsed = _parse_job_id(event.job_id)
        if parsed is None:
            return
        slug, kind = parsed
        spec = self.specs.get(event.job_id)
        scheduled = getattr(event, "scheduled_run_time", None)
        slot = self._slot_of(spec, scheduled) if spec and scheduled else None
        what = "approval request" if kind == NOTIFY else "run"
        if event.code == EVENT_JOB_MISSED:
            grace = spec.grace if spec else timedelta()
            detail = (
                f"{what} missed: the scheduler came back more than {_hours(grace)} after it "
                "(misfire grace); `digest run` sends it by hand"
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            detail = f"{what} not started: the previous run of this digest is still busy"
        else:
            return  # errors are caught, logged and recorded in fire()
        log.warning("%s %s: %s", slug, slot, detail)
        with self.project.engine.begin() as conn:
            repository.log_schedule(conn, slug, slot, "missed", detail, self.project.clock())

    def next_run_times(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def wait(self, lock: SchedulerLock | None = None, check_every: float = 30) -> None:
        """Block until :meth:`stop` (or Ctrl-C); stop when the lock is lost (PostgreSQL gone)."""
        while not self.stopped.wait(check_every):
            if lock is not None and not lock.alive():
                raise DigestError("lost the scheduler lock (database connection gone); stopping")

    def stop(self, wait: bool = True) -> None:
        """Stop; with ``wait``, a running send finishes first (it would resume anyway)."""
        global _service
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self.stopped.set()
        if _service is self:
            _service = None
