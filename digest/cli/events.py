"""``digest events prune``: what is kept of the Event Webhook's events."""

from __future__ import annotations

import typer

from digest.app import feedback
from digest.cli.options import ConfigOption, open_project
from digest.cli.output import out

events_app = typer.Typer(help="The Event Webhook's events.", no_args_is_help=True)


@events_app.command("prune")
def prune(config: ConfigOption = None) -> None:
    """Delete the raw events older than [events] keep_days, and forget who opened or clicked
    the issues sent before then (their unique figures are final). The per-issue figures stay.
    The webhook prunes a little with each batch as well; this catches up at once."""
    project = open_project(config)
    pruned = feedback.prune_events(project)
    days = project.config.file.events.keep_days
    out.print(
        f"Deleted {pruned.events} raw event(s) older than {days} day(s); forgot "
        f"{pruned.readers} opener(s) and clicker(s) of issues sent before then.",
        highlight=False,
    )


@events_app.command("drain")
def drain(config: ConfigOption = None) -> None:
    """Apply every webhook batch staged so far (the server does this itself soon after each
    batch; this is for a server that is stopped, or before reading the database by hand)."""
    project = open_project(config)
    drained = feedback.drain(project)
    report = drained.report
    out.print(
        f"Applied {drained.batches} staged batch(es): {sum(report.applied.values())} new "
        f"event(s), {report.duplicates} duplicate(s), {report.suppressed} reader(s) "
        "suppressed.",
        highlight=False,
    )
