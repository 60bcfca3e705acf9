"""``digest bounces``: the bounce mailbox of SMTP sends."""

from __future__ import annotations

import typer

from digest.app import bounces
from digest.cli.options import ConfigOption, open_project
from digest.cli.output import out

bounces_app = typer.Typer(
    help="Bounces and complaints of SMTP sends, read from the [bounces] IMAP mailbox.",
    no_args_is_help=True,
)

_SHOWN = {
    "bounce": "permanent failures",
    "spamreport": "complaints",
    "deferred": "temporary failures (nobody suppressed)",
    "already applied": "already applied",
    "no token": "without a valid token of ours (left alone)",
    "no delivery": "for a delivery the ledger does not hold",
    "not a report": "not a bounce or a complaint",
}


@bounces_app.command("fetch")
def fetch(config: ConfigOption = None) -> None:
    """Read the new messages of the bounce mailbox, suppress the readers whose address bounced
    or who complained (as the SendGrid webhook does), and flag each message as read by us."""
    project = open_project(config)
    report = bounces.fetch_configured(project)
    out.print(f"{report.read} new message{'' if report.read == 1 else 's'} in the bounce mailbox")
    for key, label in _SHOWN.items():
        if report.outcomes[key]:
            out.print(f"  {report.outcomes[key]:>5} {label}")
    out.print(f"{report.suppressed} reader{'' if report.suppressed == 1 else 's'} suppressed")
