"""Use cases of what comes back after sending: SendGrid's signed event webhook, whose events
go to the ledger's figures and whose bounces, complaints and unsubscribes suppress readers.

The signature and the parsing are pure (:mod:`digest.events`); this checks them against the
project's settings. A verified batch is **staged**: its rows appended to the inbox in one
durable commit, and answered. A **drain** applies the staged batches, many at once, in one
transaction of the database: on SQLite, where inserting at random ``sg_event_id`` keys and
committing cost most, a drain of fifty batches writes each index page once for many events
where fifty batches would each have written it. Drains run in the serving process's thread
(:class:`Drainer`) soon after a batch is staged, and before anything that must see every
event: a send (its recipients must not include a reader a staged bounce suppresses), the
figures, an erasure, pruning, and ``digest events drain``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from digest.app.subscribers import erasure_hasher
from digest.app.wiring import Project
from digest.events import (
    EventReport,
    Pruned,
    apply_staged,
    parse,
    prepare,
    prune,
    signature_valid,
)
from digest.gather.urls import canonical_url
from digest.send import people as ledger_people
from digest.stores import engagement
from subscribers.store import SubscriberStore

log = logging.getLogger(__name__)

PRUNE_PER_EVENT = 2
"""Each drain deletes up to this many expired raw events per event it applies, so storage
stays level while events flow without a drain ever paying for a backlog (that is what
`digest events prune` is for)."""


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


@dataclass(frozen=True)
class Staged:
    """What a webhook answer can tell at once: the events staged, and those left out (an
    unknown kind, no id or address, or a repeat within the batch)."""

    accepted: int
    ignored: int


def stage_webhook(
    project: Project, raw_body: bytes, signature: str | None, timestamp: str | None
) -> Staged:
    """Check one signed batch and stage its events in the inbox in one durable commit, to be
    applied exactly once each by :func:`drain`; :class:`WebhookRefused` if it cannot be
    trusted or read. Durable: a batch answered is never sent again, and it may hold
    unsubscribes and complaints that must not be lost."""
    settings = project.config.sending.sendgrid
    if not settings.webhook_public_key:
        raise WebhookOff
    now = project.clock()
    valid = signature_valid(
        raw_body,
        signature,
        timestamp,
        settings.webhook_public_key,
        now,
        timedelta(seconds=settings.webhook_tolerance_seconds),
    )
    if not valid:
        raise BadSignature
    try:
        events = parse(raw_body)
    except ValueError as problem:
        raise NotABatch(str(problem)) from problem
    return stage_events(project, events)


def stage_events(project: Project, events: Iterable[Mapping[str, Any]]) -> Staged:
    """Stage a batch's events (trusted already) in one durable commit of the inbox, as the
    rows they will be (their clicks are matched to posts by the drain, which reads each
    issue's posts once for many batches)."""
    now = project.clock()
    batch = prepare(events, now, _unstamped)
    rows = batch.rows
    if rows:
        with project.inbox().begin() as conn:
            engagement.stage(conn, now, len(rows), orjson.dumps(rows))
    return Staged(len(rows), batch.ignored + batch.repeated)


def _unstamped(_: datetime) -> None:
    """Staged rows leave out when they came: the inbox row holds it once for the batch."""


DRAIN_EVENTS = 100_000
"""The most staged events one drain applies in its transaction: enough that a backlog goes in
many batches at once (sorted, each index page written once for many events), few enough that
SQLite's write lock, which every other writer waits for (10 s at most, then fails), is held
for seconds: drains of twice this size took 9 to 10 s each under the bench's full load on a
slow day (2 cores), for a few per cent less time in all, within the runs' spread."""
DRAIN_BATCHES = 1_000


@dataclass(frozen=True)
class Drained:
    batches: int
    report: EventReport
    """What the drained events did: applied per kind, duplicates (of events applied before,
    or staged twice), readers suppressed; ``ignored`` is always 0 (counted when staged)."""


_DRAINING = threading.Lock()
"""One drain at a time in a process (the serving process's thread, a page, a send): a second
would apply nothing the first does not, at the cost of the same work."""


def drain(project: Project) -> Drained:
    """Apply every batch staged so far, oldest first, many at once, and delete them from the
    inbox; what it did. Each round is one transaction of the database: its new events go in,
    add to the rollups and suppress readers together. On PostgreSQL the inbox rows go in the
    same transaction; on SQLite the inbox is another file and its rows are deleted after the
    commit, so a crash between the two leaves them staged: drained again, every event is
    already stored, and the database's unique key on ``sg_event_id`` turns the second
    application into duplicates that change nothing."""
    applied: Counter[str] = Counter()
    batches = duplicates = suppressed = 0
    inbox = project.inbox()
    with _DRAINING:
        with inbox.connect() as conn:
            up_to = engagement.last_staged(conn)
        while up_to is not None:
            with inbox.connect() as conn:
                taken = engagement.staged(conn, DRAIN_EVENTS, DRAIN_BATCHES, up_to)
            if not taken:
                break
            report = _apply_staged(project, taken, inbox)
            batches += len(taken)
            applied += report.applied
            duplicates += report.duplicates
            suppressed += report.suppressed
    return Drained(batches, EventReport(applied, duplicates, suppressed, 0))


def _apply_staged(
    project: Project, taken: list[engagement.StagedBatch], inbox: Engine
) -> EventReport:
    keep_days = project.config.file.events.keep_days
    now = project.clock()
    ids = [batch.id for batch in taken]
    staged = sum(batch.events for batch in taken)
    with project.transaction() as conn:
        prune(conn, now, keep_days, limit=PRUNE_PER_EVENT * staged + 100)
        report = apply_staged(conn, taken, now, keep_days=keep_days, link_of=PostLinks(conn))
        _forget_erased(project, conn, report.addresses)
        if inbox is project.engine:
            engagement.unstage(conn, ids)
    if inbox is not project.engine:
        with inbox.begin() as conn:
            engagement.unstage(conn, ids)
    return report


def staged_events(project: Project) -> int:
    """How many events wait in the inbox to be applied."""
    with project.inbox().connect() as conn:
        return engagement.staged_events(conn)


def _forget_erased(project: Project, conn: Connection, addresses: AbstractSet[str]) -> None:
    """An event that comes after its reader was erased on request (a late "delivered") would
    store the address again: blank it, as the erasure did (:mod:`digest.app.people`)."""
    store = SubscriberStore(conn)
    if not store.has_erased():
        return
    if project.config.secrets.secret_key and not project.erasure_keys():
        return  # no key opens (see erasure_hasher): adding people stops; events still go in
    hasher = erasure_hasher(project, store)
    addresses = addresses - {""}
    if hasher is None or not addresses:
        return
    found = hasher.keys_of(addresses)
    for key in store.erased_among(found):
        ledger_people.forget_events(conn, found[key])


def prune_events(project: Project) -> Pruned:
    """Delete every raw event older than ``[events] keep_days`` and forget who opened or
    clicked the issues sent before then; the figures stay. Drains the inbox first."""
    drain(project)
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


DRAIN_POLL_SECONDS = 1.0
"""How often the drain thread looks at the inbox when no batch woke it: it also takes what
another serving process staged, and retries after a failed drain."""


class Drainer:
    """The serving process's thread that drains the inbox: at start (nothing staged before a
    crash stays stranded), soon after each batch is staged (:meth:`wake`), and once more when
    the server stops. While a drain runs, more batches are staged; the next drain takes them
    all at once, so the busier the webhook, the more events each drain spreads its writes
    over."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._wake = threading.Event()
        self._wake.set()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="digest-event-drain", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """A batch was staged."""
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(DRAIN_POLL_SECONDS)
            self._wake.clear()
            stopping = self._stopping
            try:
                drain(self.project)
            except Exception:  # the database was busy or down: the batches stay staged
                log.exception("draining the event inbox failed; it is tried again")
            if stopping:
                return

    def close(self, timeout: float | None = None) -> bool:
        """Stop the thread after its last drain; False if it was still draining after
        ``timeout`` seconds (what is left stays staged for the next start)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()
