"""schedule: when each digest runs, and the decisions a run makes. The job body is the
application's :mod:`digest.app.scheduled`; the process that fires it is :mod:`digest.scheduler`.

* **Decisions (pure).** :func:`gate` turns (approval policy, approval state, now, slot, lead)
  into an :class:`Action`; :func:`catch_up` says which of the slots due after downtime runs
  (the newest, within the misfire grace) and which were missed; :func:`dst_edges` finds
  wall-clock times a schedule names that do not exist, or happen twice, in the next year.
* **The lock** that lets exactly one scheduler run per database (:func:`acquire_lock`).

Why not let APScheduler do all of it: its default misfire grace is one second (a restart a
minute late silently skips the week's issue), ``add_job(replace_existing=True)`` on restart
recomputes the next run from *now* (so the slots missed while down are neither run nor
reported), and with ``coalesce`` the older missed slots vanish without an event. Each of
those is handled here and recorded in ``schedule_log``.
"""

from digest.schedule.gate import Action, gate
from digest.schedule.lock import SchedulerBusy, SchedulerLock, acquire_lock, scheduler_running
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
    "acquire_lock",
    "catch_up",
    "cron_trigger",
    "dst_edges",
    "gate",
    "is_repeat",
    "latest_slot",
    "next_runs",
    "next_slot",
    "next_slots",
    "scheduler_running",
    "slots_between",
]
