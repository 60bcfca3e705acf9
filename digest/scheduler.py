"""The scheduler face: APScheduler with the jobs of the config in a job store in the project
database, kept in step with the config, their missed runs recorded. Each job calls the
scheduled-slot use case (:mod:`digest.app.scheduled`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest.app import bounces, feedback
from digest.app.scheduled import SlotOutcome, log_slot, run_slot, slots_with_waves_left
from digest.app.wiring import Project, check_runtime
from digest.config import Config
from digest.errors import DigestError
from digest.schedule.lock import SchedulerLock
from digest.schedule.slots import (
    ONE_MICROSECOND,
    LeadTrigger,
    catch_up,
    cron_trigger,
    hours_label,
    latest_slot,
    slots_between,
)
from digest.schedule.waves import WAVES_SPAN

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
JobKind = Literal["run", "notify", "bounces", "prune", "wave"]
RUN: JobKind = "run"
NOTIFY: JobKind = "notify"
BOUNCES: JobKind = "bounces"
BOUNCES_JOB = "bounces"
"""The job reading the bounce mailbox every ``[bounces] fetch_minutes`` (when it is set up):
not a digest's slot, so nothing about it goes to the schedule log."""
PRUNE: JobKind = "prune"
PRUNE_JOB = "events-prune"
"""The daily job deleting raw events older than ``[events] keep_days`` (as ``digest events
prune`` does), so a project the webhook hears nothing from still prunes. Not a digest's slot."""
PRUNE_TRIGGER = CronTrigger(hour=3, minute=17, timezone=UTC)
"""Daily at a quiet hour off the round ones; a fixed trigger, so a restart keeps its next run."""
WAVE: JobKind = "wave"
"""A date job at a local-delivery slot's next wave (``wave:<slug>:<cadence>:<slot>``), added
when a run leaves waves for later and again, from ``issue_waves``, when the scheduler starts."""


# APScheduler wiring ----------------------------------------------------------------------------


def job_id(digest_slug: str, kind: JobKind = RUN, cadence: str = "") -> str:
    """``digest:<slug>`` (and ``digest:<slug>:notify``) for a digest's '' cadence, as before
    cadences existed; ``digest:<slug>:<cadence>`` (``…:<cadence>:notify``) for the others."""
    if kind == BOUNCES:
        return BOUNCES_JOB
    if kind == PRUNE:
        return PRUNE_JOB
    base = f"digest:{digest_slug}" + (f":{cadence}" if cadence else "")
    return base if kind == RUN else f"{base}:{kind}"


def wave_job_id(digest_slug: str, cadence: str, slot: datetime) -> str:
    return f"wave:{digest_slug}:{cadence}:{int(slot.timestamp())}"


def _parse_job_id(value: str) -> tuple[str, JobKind, str] | None:
    """(digest, kind, cadence) of a job this face made; None for a wave job or another's."""
    if value == BOUNCES_JOB:
        return "", BOUNCES, ""
    if value == PRUNE_JOB:
        return "", PRUNE, ""
    parts = value.split(":")
    if parts[0] != "digest" or len(parts) not in (2, 3, 4):
        return None
    kind: JobKind = NOTIFY if parts[-1] == NOTIFY and len(parts) > 2 else RUN
    rest = parts[2:-1] if kind == NOTIFY else parts[2:]
    return parts[1], kind, rest[0] if rest else ""


@dataclass(frozen=True)
class JobSpec:
    """One job the config asks for."""

    id: str
    digest: str
    kind: JobKind
    trigger: BaseTrigger
    grace: timedelta
    cadence: str = ""


def job_specs(config: Config) -> list[JobSpec]:
    """One run job per cadence of each digest; ``require`` digests also get an
    approval-request job per cadence, whose grace is the whole lead (a late request is still
    worth sending until the slot). The bounce mailbox job when it is set up; the daily event
    pruning always."""
    specs = []
    for digest in config.digests:
        for cadence in digest.schedules:
            cron = cron_trigger(digest, cadence)
            # A local-delivery slot fires at its first possible wave and lasts until its last,
            # 26 hours later: a scheduler back within the grace of any wave still runs it.
            grace = digest.misfire_grace + (WAVES_SPAN if digest.local_delivery else timedelta())
            specs.append(
                JobSpec(job_id(digest.slug, RUN, cadence), digest.slug, RUN, cron, grace, cadence)
            )
            if digest.approval == "require":
                specs.append(
                    JobSpec(
                        job_id(digest.slug, NOTIFY, cadence),
                        digest.slug,
                        NOTIFY,
                        LeadTrigger(cron, digest.approval_lead),
                        digest.approval_lead,
                        cadence,
                    )
                )
    bounces = config.file.bounces
    if bounces.imap_host:
        every = timedelta(minutes=bounces.fetch_minutes)
        specs.append(
            JobSpec(
                BOUNCES_JOB,
                "",
                BOUNCES,
                IntervalTrigger(seconds=every.total_seconds(), timezone=UTC),
                every,
            )
        )
    specs.append(JobSpec(PRUNE_JOB, "", PRUNE, PRUNE_TRIGGER, timedelta(days=1)))
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


def scheduled_job(digest_slug: str, kind: str, cadence: str = "", slot: str = "") -> None:
    """What APScheduler calls. Runs in the executor's thread. (Jobs stored before cadences
    existed pass only the first two arguments.)"""
    if _service is None:
        raise RuntimeError("no SchedulerService is running in this process")
    if kind == BOUNCES:
        _service.fetch_bounces()
        return
    if kind == PRUNE:
        _service.prune_events()
        return
    if kind == WAVE:
        _service.run_wave(digest_slug, cadence, datetime.fromisoformat(slot))
        return
    _service.fire(digest_slug, NOTIFY if kind == NOTIFY else RUN, cadence)


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
        check_runtime()  # a DigestError before any job could send on an unsafe Python
        self.project = project
        self.specs = {spec.id: spec for spec in job_specs(project.config)}
        self.scheduler = scheduler_factory(
            jobstores={"default": project.job_store(JOB_TABLE)},
            executors={"default": ThreadPoolExecutor(max(1, len(self.specs)))},
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
            if spec.kind == BOUNCES:
                # No slots to catch up: one interval (its grace) from now, the next fetch
                # reads whatever came meanwhile.
                next_run = now + spec.grace
            if next_run is None:
                next_run = spec.trigger.get_next_fire_time(None, now)
            elif next_run <= now and spec.kind == PRUNE:
                next_run = now  # overdue while no scheduler ran: prune once, now; no slots
            elif next_run <= now:
                notes += self._record_missed(
                    spec, slots_between(spec.trigger, next_run - ONE_MICROSECOND, now), now
                )
            self.scheduler.add_job(
                scheduled_job,
                trigger=spec.trigger,
                args=[spec.digest, spec.kind, spec.cadence],
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
        notes += self._resume_waves(now)
        return notes

    def _resume_waves(self, now: datetime) -> list[str]:
        """A job for the next wave of every slot with waves left (``issue_waves`` is what
        counts, not the job store: a wave due while no scheduler ran runs now, once). Other
        wave jobs stay: one waiting for a slot's first wave has no issue to be found by yet,
        and one whose slot was finished otherwise finds nothing to do."""
        left = slots_with_waves_left(self.project)
        notes = []
        for _, slug, cadence, slot, next_wave in left:
            if job_id(slug, RUN, cadence) not in self.specs:
                continue
            self.schedule_wave(slug, cadence, slot, max(next_wave, now))
            if next_wave <= now:
                notes.append(
                    f"{slug} {cadence or ''} slot {slot:%Y-%m-%d %H:%M} UTC: its wave of "
                    f"{next_wave:%Y-%m-%d %H:%M} UTC runs now"
                )
        return notes

    def schedule_wave(self, digest_slug: str, cadence: str, slot: datetime, at: datetime) -> str:
        """A date job running the slot again at ``at`` (its next wave). No misfire grace: a
        wave late is better than a wave never; the ledger makes it once."""
        ident = wave_job_id(digest_slug, cadence, slot)
        self.scheduler.add_job(
            scheduled_job,
            trigger=DateTrigger(at.astimezone(UTC), timezone=UTC),
            args=[digest_slug, WAVE, cadence, slot.astimezone(UTC).isoformat()],
            id=ident,
            name=f"wave {digest_slug} {cadence}".strip(),
            replace_existing=True,
            misfire_grace_time=None,
            coalesce=True,
            max_instances=1,
        )
        return ident

    def run_wave(self, digest_slug: str, cadence: str, slot: datetime) -> SlotOutcome | None:
        """A wave job fired: run the slot again (its due waves), and schedule the next."""
        if job_id(digest_slug, RUN, cadence) not in self.specs:
            log.warning("wave of %s %s: not configured any more; ignored", digest_slug, cadence)
            return None
        return self._run(digest_slug, cadence, slot, self.project.clock())

    def _run(
        self, digest_slug: str, cadence: str, slot: datetime, now: datetime
    ) -> SlotOutcome | None:
        try:
            outcome = run_slot(self.project, digest_slug, slot, cadence)
        except Exception as err:
            log.exception("%s: the run of %s failed", digest_slug, slot)
            log_slot(
                self.project,
                digest_slug,
                slot,
                "failed",
                f"{type(err).__name__}: {err}",
                now,
                cadence,
            )
            return None
        if outcome.next_wave is not None:
            self.schedule_wave(digest_slug, cadence, slot, outcome.next_wave)
        return outcome

    def _record_missed(self, spec: JobSpec, due: list[datetime], now: datetime) -> list[str]:
        """Slots coalesced away: APScheduler runs only the newest due one (or reports it
        missed, past the grace) and says nothing about the others. Record them here."""
        plan = catch_up(due, now, spec.grace)
        coalesced = due[:-1]
        notes = []
        for slot in coalesced:
            shown = self._slot_of(spec, slot)
            then = f"ran the slot of {due[-1]:%Y-%m-%d %H:%M} UTC instead" if plan.run else ""
            detail = (
                f"{'approval request' if spec.kind == NOTIFY else 'run'} missed: "
                f"no scheduler was running; {then or 'every due slot was past the grace'}"
            )
            log_slot(self.project, spec.digest, shown, "missed", detail, now, spec.cadence)
            notes.append(f"{spec.digest} {shown:%Y-%m-%d %H:%M} UTC: {detail}")
        return notes

    def fetch_bounces(self) -> None:
        """The bounce mailbox job: a failure (the server is down) is logged; the next run
        reads whatever this one did not."""
        try:
            report = bounces.fetch_configured(self.project)
        except Exception:
            log.exception("reading the bounce mailbox failed")
            return
        if report.read:
            log.info("bounce mailbox: %s; %d suppressed", dict(report.outcomes), report.suppressed)

    def prune_events(self) -> None:
        """The daily pruning job: a failure (the database is away) is logged; the next day's
        run deletes whatever this one did not."""
        try:
            pruned = feedback.prune_events(self.project)
        except Exception:
            log.exception("pruning the raw events failed")
            return
        if pruned.events or pruned.readers:
            log.info(
                "pruned %d raw event(s); forgot %d opener(s) and clicker(s)",
                pruned.events,
                pruned.readers,
            )

    def _slot_of(self, spec: JobSpec, fire: datetime) -> datetime:
        fire = fire.astimezone(UTC)
        return fire + spec.trigger.lead if isinstance(spec.trigger, LeadTrigger) else fire

    def fire(self, digest_slug: str, kind: JobKind, cadence: str = "") -> SlotOutcome | None:
        """A job fired: find its slot from the clock and run it."""
        spec = self.specs.get(job_id(digest_slug, kind, cadence))
        if spec is None:
            log.warning("job %s:%s is not configured any more; ignored", digest_slug, kind)
            return None
        now = self.project.clock()
        fired = latest_slot(spec.trigger, now, spec.grace + timedelta(minutes=1))
        if fired is None:
            log.warning("%s fired at %s with no slot within the grace; ignored", spec.id, now)
            return None
        return self._run(digest_slug, cadence, self._slot_of(spec, fired), now)

    def _on_event(self, event: JobEvent) -> None:
        parsed = _parse_job_id(event.job_id)
        if parsed is None:
            return
        slug, kind, cadence = parsed
        if kind in (BOUNCES, PRUNE):
            return  # not a digest's slot: nothing to record
        spec = self.specs.get(event.job_id)
        scheduled = getattr(event, "scheduled_run_time", None)
        slot = self._slot_of(spec, scheduled) if spec and scheduled else None
        what = "approval request" if kind == NOTIFY else "run"
        if event.code == EVENT_JOB_MISSED:
            grace = spec.grace if spec else timedelta()
            detail = (
                f"{what} missed: the scheduler came back more than {hours_label(grace)} after it "
                "(misfire grace); `digest run` sends it by hand"
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            detail = f"{what} not started: the previous run of this digest is still busy"
        else:
            return  # errors are caught, logged and recorded in fire()
        # A missed job whose slot is unknown (its spec gone) is still named by when it fired.
        at = slot or scheduled
        log.warning(
            "%s %s: %s", slug, f"slot {at:%Y-%m-%d %H:%M %Z}" if at else "(no slot)", detail
        )
        log_slot(self.project, slug, slot, "missed", detail, cadence=cadence)

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
