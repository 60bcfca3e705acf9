"""``digest issues ledger N``: what the ledger knows of one issue's send."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from digest.app import sending
from digest.cli.options import ConfigOption, DigestOption, open_project
from digest.cli.output import out

issues_app = typer.Typer(help="One issue at a time.", no_args_is_help=True)

STATES = ("pending", "submitting", "handed", "submitted", "failed", "ambiguous")


@issues_app.command("ledger")
def ledger(
    number: Annotated[int, typer.Argument(help="the issue's number")],
    config: ConfigOption = None,
    digest: DigestOption = None,
) -> None:
    """Deliveries per state, the ambiguous and failed batches with why and when, and the
    failed deliveries with their reasons. Ambiguous ones are sent again with
    `digest send --resend-ambiguous --issue N`."""
    project = open_project(config)
    row, view = sending.ledger(project, digest, number)
    counts = Table(title=f"Issue {row.number} of {row.digest} ({row.status})", title_justify="left")
    counts.add_column("State")
    counts.add_column("Deliveries", justify="right")
    for state in STATES:
        counts.add_row(state, str(view.counts.get(state, 0)))
    out.print(counts)
    if view.batches:
        batches = Table(title="Ambiguous and failed batches", title_justify="left")
        for column in ("Batch", "Segment", "Recipients", "State", "Times ambiguous", "Since"):
            batches.add_column(column)
        batches.add_column("Why", overflow="fold")
        for batch in view.batches:
            batches.add_row(
                str(batch.id),
                batch.segment,
                str(batch.size),
                batch.status,
                str(batch.ambiguities),
                f"{batch.changed_at:%Y-%m-%d %H:%M} UTC",
                escape(batch.error or "in flight when its worker stopped"),
            )
        out.print(batches)
    for reason, count in view.failure_reasons.most_common():
        out.print(f"failed: {count} × {escape(reason or 'no reason given')}", highlight=False)
    for address, reason in view.failed_recipients:
        out.print(f"  {escape(address)}: {escape(reason)}", highlight=False, soft_wrap=True)
    if view.counts.get("ambiguous"):
        out.print(
            f"Send the ambiguous ones again: digest send --resend-ambiguous --issue {row.number}",
            highlight=False,
        )
