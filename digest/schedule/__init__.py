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

from digest.schedule.gate import Action, gate
from digest.schedule.job import SlotOutcome, editor_url, run_slot
from digest.schedule.lock import SchedulerBusy, SchedulerLock, acquire_lock, scheduler_running
from digest.schedule.service import SchedulerService, job_id, scheduled_job
from digest.schedule.slots import (
    DstEdge,
    LeadTrigger,
    NextRun,
    catch_up,
    cron_trigger,
    dst_edges,
    is_repeat,
    latest_slot,
    next_runs,
    next_slot,
    next_slots,
    slots_between,
)

__all__ = [
    "Action",
    "DstEdge",
    "LeadTrigger",
    "NextRun",
    "SchedulerBusy",
    "SchedulerLock",
    "SchedulerService",
    "SlotOutcome",
    "acquire_lock",
    "catch_up",
    "cron_trigger",
    "dst_edges",
    "editor_url",
    "gate",
    "is_repeat",
    "job_id",
    "latest_slot",
    "next_runs",
    "next_slot",
    "next_slots",
    "run_slot",
    "scheduled_job",
    "scheduler_running",
    "slots_between",
]
