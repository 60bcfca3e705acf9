"""Use case: read the bounce mailbox of SMTP sends and apply what it holds, with the rules of
SendGrid's webhook (:func:`digest.events.apply_events`): a permanent failure suppresses the
delivery's address as bounced, a complaint as complained, a temporary failure is counted and
suppresses nobody.

Each message is read (:mod:`digest.bounces`), matched to its delivery by its signed token,
applied in one transaction under an event id made from the message's bytes (so applying it
twice changes nothing), then flagged in the mailbox so the next fetch passes it over.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from digest.app.wiring import Project
from digest.bounces import Kind, Mailbox, delivery_of, read_report
from digest.events import apply_events
from digest.send.reporting import delivery_address
from digest.verp import BounceTokens

EVENT_PREFIX = "imap:"


@dataclass
class BounceReport:
    """What one fetch did. ``outcomes`` counts messages by what became of them:
    ``bounce``/``deferred``/``spamreport`` (applied), ``already applied``, ``no token`` (no
    valid token, or tokens of two deliveries), ``no delivery`` (a valid token of a delivery
    the ledger does not hold), ``not a report``."""

    outcomes: Counter[str] = field(default_factory=Counter)
    suppressed: int = 0
    read: int = 0


def fetch(project: Project, mailbox: Mailbox) -> BounceReport:
    """Apply every unprocessed message of ``mailbox`` (an open :class:`~digest.bounces.Mailbox`,
    e.g. ``project.bounce_mailbox()``) and mark each processed."""
    tokens = project.bounce_tokens()
    report = BounceReport()
    for message_id, raw in mailbox.unprocessed():
        report.read += 1
        report.outcomes[_apply(project, tokens, raw, report)] += 1
        mailbox.mark_processed(message_id)
    return report


def fetch_configured(project: Project) -> BounceReport:
    """:func:`fetch` over the mailbox ``[bounces]`` names."""
    with project.bounce_mailbox() as mailbox:
        return fetch(project, mailbox)


def _apply(project: Project, tokens: BounceTokens, raw: bytes, report: BounceReport) -> str:
    found = read_report(raw)
    if found.kind is Kind.NONE:
        return "not a report"
    delivery = delivery_of(found, tokens)
    if delivery is None:
        return "no token"
    issue_id, subscriber_id = delivery
    with project.transaction() as conn:
        address = delivery_address(conn, issue_id, subscriber_id)
        if address is None:
            return "no delivery"
        event = {
            "event": str(found.kind),
            "sg_event_id": EVENT_PREFIX + found.digest,
            "email": address,
            "issue_id": issue_id,
            "subscriber_id": subscriber_id,
            "timestamp": int(project.clock().timestamp()),
        }
        applied = apply_events(conn, [event], project.clock())
    report.suppressed += applied.suppressed
    return "already applied" if applied.duplicates else str(found.kind)
