"""``digest scheduler`` (runs every digest at its slots) and ``digest schedule list`` (when they
run next, and what went wrong lately)."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.markup import escape
from rich.table import Table

from digest.app.scheduled import recent_trouble, slot_waves, slots_with_waves_left
from digest.app.wiring import Project
from digest.cli.options import ConfigOption, open_project
from digest.cli.output import err, out, print_error
from digest.schedule import NextRun, SchedulerBusy, SchedulerLock, next_runs
from digest.schedule.slots import DstEdge
from digest.schedule.waves import wall_time
from digest.schedule.words import schedule_in_words
from digest.scheduler import SchedulerService

schedule_app = typer.Typer(help="When each digest runs.", no_args_is_help=True)


def scheduler(
    config: ConfigOption = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="when another scheduler runs, wait to take over instead of exiting"
        ),
    ] = False,
    poll: Annotated[float, typer.Option(help="with --wait: seconds between tries")] = 30.0,
) -> None:
    """Run every digest on its schedule until Ctrl-C (or SIGTERM). Only one per database.

    Each digest runs gather → plan → approval gate → send at its slots; `require` digests
    also ask their editors approval_lead_hours before. A slot missed while no scheduler ran
    runs once when it comes back within misfire_grace_hours; older ones are recorded as
    missed (`digest schedule list` shows them)."""
    project = open_project(config)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # Ctrl-C and SIGTERM stop it cleanly, also when it was started with SIGINT ignored (as a
    # background job of a script is): Python leaves an ignored SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        lock = _scheduler_lock(project, wait, poll)
    except KeyboardInterrupt:
        err.print("Stopped while waiting for the other scheduler.")
        return
    service = SchedulerService(project)
    try:
        for note in service.start():
            err.print(f"[yellow]{escape(note)}[/]", highlight=False)
        for run in next_runs(project.config, project.clock()):
            out.print(f"{_name(run)}: next run {_next(run)} ({run.policy})")
        out.print("Scheduler running; Ctrl-C stops it.")
        service.wait(lock)
    except KeyboardInterrupt:
        err.print("Stopping (a send in progress finishes first)…")
    finally:
        service.stop()
        lock.release()
    out.print("Scheduler stopped.")


def _scheduler_lock(project: Project, wait: bool, poll: float) -> SchedulerLock:
    told = False
    while True:
        try:
            return project.scheduler_lock()
        except SchedulerBusy as busy:
            if not wait:
                print_error(busy)
                err.print("Use --wait to take over when it stops.")
                raise typer.Exit(3) from None
            if not told:
                err.print(
                    f"{busy}; waiting to take over (Ctrl-C to give up)",
                    highlight=False,
                    markup=False,
                )
                told = True
            time.sleep(poll)


def _name(run: NextRun) -> str:
    return f"{run.digest} ({run.cadence})" if run.cadence else run.digest


def _next(run: NextRun) -> str:
    if run.local_delivery and run.local is not None:
        return f"{run.local:%a %Y-%m-%d %H:%M} in each reader's time zone"
    return _when(run.at, run.timezone)


def _when(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "never"
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a %Y-%m-%d %H:%M %Z} = {moment.astimezone(UTC):%H:%M} UTC"


@schedule_app.command("list")
def schedule_list(config: ConfigOption = None) -> None:
    """Each digest's cadences' next runs in its time zone and in UTC, its approval policy, the
    slots recently missed or skipped, and schedule times that DST skips or repeats within a
    year. With local_delivery: each slot's waves (UTC instant, offsets, zones, readers,
    done), for the next slot and any slot still sending."""
    project = open_project(config)
    runs = next_runs(project.config, project.clock())
    _print_runs(runs)
    _print_waves(project, runs)
    if not project.scheduler_running():
        err.print(
            "[yellow]No `digest scheduler` is running on this database: slots pass unsent "
            "(recorded as missed when it starts, or run once within the misfire grace).[/]"
        )
    _print_trouble(project, runs)
    for run in runs:
        for message in dst_warnings(run.edges):
            err.print(
                f"[yellow]warning: {escape(_name(run))}:[/] {escape(message)}",
                highlight=False,
                soft_wrap=True,
            )


DST_DETAIL = 3
"""Per clock change, this many of its times are described one by one; more are summed up."""


def dst_warnings(edges: Sequence[DstEdge]) -> list[str]:
    """One line per time DST skips or repeats, unless a clock change touches more than
    :data:`DST_DETAIL` of the schedule's times (``* * * * *`` names 60 in the skipped hour):
    then one line for that change."""
    by_change: dict[tuple[date, str], list[DstEdge]] = {}
    for edge in edges:
        by_change.setdefault((edge.day, edge.kind), []).append(edge)
    lines: list[str] = []
    for (day, kind), group in by_change.items():
        if len(group) <= DST_DETAIL:
            lines.extend(edge.message() for edge in group)
            continue
        first, last = min(e.wall for e in group), max(e.wall for e in group)
        what = "do not exist" if kind == "missing" else "happen twice"
        lines.append(
            f"{day:%Y-%m-%d}: {len(group)} run times from {first:%H:%M} to {last:%H:%M} {what} "
            f"in {group[0].zone} (clocks go {'forward' if kind == 'missing' else 'back'}); "
            "prefer times outside 01:00-03:00"
        )
    return lines


def _print_runs(runs: list[NextRun]) -> None:
    table = Table(title="Schedules", title_justify="left")
    for column in ("Digest", "Schedule", "Next run (local)", "Next run (UTC)", "Approval"):
        table.add_column(column)
    for run in runs:
        local = run.local
        approval = run.policy
        if run.ask_at is not None:
            approval += f" (editors asked {_when(run.ask_at, run.timezone)})"
        if run.local_delivery:
            zone = "each reader's time zone"
            shown = f"{local:%a %Y-%m-%d %H:%M}, each reader's" if local else "never"
            first = f"from {run.at:%Y-%m-%d %H:%M} UTC, in waves" if run.at else "never"
        else:
            zone = run.timezone
            shown = f"{local:%a %Y-%m-%d %H:%M %Z}" if local else "never"
            first = f"{run.at:%Y-%m-%d %H:%M} UTC" if run.at else "never"
        table.add_row(
            escape(_name(run)),
            escape(schedule_in_words(run.schedule, zone)),
            shown,
            first,
            approval,
        )
    out.print(table)


def _print_waves(project: Project, runs: list[NextRun]) -> None:
    """The waves of each local-delivery cadence's slots still sending, and of its next slot."""
    shown: list[tuple[str, str, datetime]] = [
        (slug, cadence, slot) for _, slug, cadence, slot, _ in slots_with_waves_left(project)
    ]
    for run in runs:
        upcoming = (run.digest, run.cadence, run.at)
        if run.local_delivery and run.at is not None and upcoming not in shown:
            shown.append((run.digest, run.cadence, run.at))
    for slug, cadence, slot in shown:
        name = f"{slug} ({cadence})" if cadence else slug
        table = Table(
            title=f"Waves of {name}, {wall_time(slot):%a %Y-%m-%d %H:%M} local",
            title_justify="left",
        )
        for column in ("Wave (UTC)", "UTC offset", "Zones", "Readers", "Done"):
            table.add_column(column)
        for wave in slot_waves(project, slug, slot, cadence):
            table.add_row(
                f"{wave.at:%Y-%m-%d %H:%M}",
                wave.offsets,
                escape(", ".join(wave.zones)),
                str(wave.readers),
                "done" if wave.done else "",
            )
        out.print(table)


def _print_trouble(project: Project, runs: list[NextRun]) -> None:
    """The slots recently missed, skipped or failed, per digest."""
    trouble = recent_trouble(project, list(dict.fromkeys(run.digest for run in runs)))
    for run in {run.digest: run for run in runs}.values():
        for row in trouble[run.digest]:
            slot = f"slot {_when(row.slot, run.timezone)}" if row.slot else "no slot"
            name = f"{run.digest} ({row.cadence})" if row.cadence else run.digest
            err.print(
                f"[yellow]{escape(name)} {row.kind}:[/] {slot}: {escape(row.detail)}",
                highlight=False,
                soft_wrap=True,
            )
