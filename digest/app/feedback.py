"""Use cases of what comes back after sending: SendGrid's signed event webhook, whose events
go to the ledger's figures and whose bounces, complaints and unsubscribes suppress readers.

The signature and the parsing are pure (:mod:`digest.events`); this checks them against the
project's settings and applies the batch in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from digest.app.subscribers import erasure_hasher
from digest.app.wiring import Project
from digest.events import EventReport, Pruned, apply_events, parse, prune, signature_valid
from digest.gather.urls import canonical_url
from digest.send import people as ledger_people
from digest.stores import engagement
from subscribers.store import SubscriberStore

PRUNE_PER_EVENT = 2
"""Each webhook batch deletes up to this many expired raw events per event it brings, so
storage stays level while events flow without a batch ever paying for a backlog (that is
what `digest events prune` is for)."""


class WebhookRefused(Exception):
    """The request was not applied; the subclass says why."""


class WebhookOff(WebhookRefused):
    """No public key is configured, so no request can be trusted."""


class BadSignature(WebhookRefused):
    """The signature is missing, wrong, or older than the tolerance (a replay)."""


class NotABatch(WebhookRefused):
    """Signed, but not a JSON array of events."""


def body_limit(project: Project) -> int:
    """The most bytes of a request body worth reading (``[sending.sendgrid]
    webhook_max_bytes``); :class:`WebhookOff` while no key is configured, when no body can be
    trusted and none need be read."""
    settings = project.config.sending.sendgrid
    if not settings.webhook_public_key:
        raise WebhookOff
    return settings.webhook_max_bytes


def apply_webhook(
    project: Project, raw_body: bytes, signature: str | None, timestamp: str | None
) -> EventReport:
    """Apply one signed batch of events exactly once each; :class:`WebhookRefused` if it
    cannot be trusted or read."""
    settings = project.config.sending.sendgrid
    if not settings.webhook_public_key:
        raise WebhookOff
    valid = signature_valid(
        raw_body,
        signature,
        timestamp,
        settings.webhook_public_key,
        project.clock(),
        timedelta(seconds=settings.webhook_tolerance_seconds),
    )
    if not valid:
        raise BadSignature
    try:
        events = parse(raw_body)
    except ValueError as problem:
        raise NotABatch(str(problem)) from problem
    keep_days = project.config.file.events.keep_days
    # Durable, though waiting for the disk is a tenth of a batch's time: a batch answered is
    # never sent again, and it may hold unsubscribes and complaints that must not be lost.
    with project.transaction() as conn:
        prune(conn, project.clock(), keep_days, limit=PRUNE_PER_EVENT * len(events) + 100)
        report = apply_events(
            conn, events, project.clock(), keep_days=keep_days, link_of=PostLinks(conn)
        )
        _forget_erased(project, conn, events)
        return report


def _forget_erased(project: Project, conn: Connection, events: list[Mapping[str, Any]]) -> None:
    """An event that comes after its reader was erased on request (a late "delivered") would
    store the address again: blank it, as the erasure did (:mod:`digest.app.people`)."""
    store = SubscriberStore(conn)
    if not store.has_erased():
        return
    hasher = erasure_hasher(project, store)
    addresses = {str(e.get("email") or "") for e in events} - {""}
    if hasher is None or not addresses:
        return
    found = hasher.keys_of(addresses)
    for key in store.erased_among(found):
        ledger_people.forget_events(conn, found[key])


def prune_events(project: Project) -> Pruned:
    """Delete every raw event older than ``[events] keep_days`` and forget who opened or
    clicked the issues sent before then; the figures stay."""
    with project.transaction() as conn:
        return prune(conn, project.clock(), project.config.file.events.keep_days)


class PostLinks:
    """Matches a click's URL to the issue's post it links to (by canonical URL: a tracking
    parameter or a fragment added on the way does not hide it), reading each issue's posts
    once."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.issues: dict[int, dict[str, int]] = {}
        self.seen: dict[tuple[int, str], int | None] = {}

    def __call__(self, issue_id: int, url: str) -> int | None:
        key = (issue_id, url)
        if key not in self.seen:
            links = self.issues.get(issue_id)
            if links is None:
                links = self.issues[issue_id] = {
                    canonical_url(link): post
                    for post, link in engagement.post_links(self.conn, issue_id)
                }
            try:
                self.seen[key] = links.get(canonical_url(url))
            except ValueError:  # not a URL urlsplit can take apart
                self.seen[key] = None
        return self.seen[key]
