"""send: an issue's variants → every recipient, exactly once, through a transport.

Delivery rows, grouped into batches, are written before anything is sent; batches are leased
by a worker, handed to the transport (several requests in flight when the transport allows
it) and marked. Running again resumes: batches a dead worker left ``submitting`` become
``ambiguous`` and are reported, and re-sent only when the policy says ``resend``.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import Engine, update

from digest import db, repository
from digest.errors import BatchRejected, DeliveryUnknown, TransportError
from digest.personalize import recipient_values
from digest.render import RenderedIssue
from digest.send import ledger
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient, plan_batches
from digest.send.message import Envelope, Personal, message_id
from subscribers.models import Status
from subscribers.segments import decode_key, encode_key
from subscribers.store import SubscriberStore
from subscribers.tokens import TokenSigner

AmbiguousPolicy = Literal["skip", "resend"]
DEFAULT_LEASE = timedelta(minutes=10)


class Transport(Protocol):
    name: str
    concurrent: bool
    """Whether ``deliver`` may run in several threads at once."""

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        """Hand the batch over; return the subscriber ids refused, with reasons.

        Raises BatchRejected when the provider refused this batch (the send goes on with the
        next), DeliveryUnknown when it was handed over without an answer, TransportError when
        nothing more can be sent (the send stops)."""
        ...


@dataclass(frozen=True)
class Links:
    """The signed personal links of one subscriber: one token, several URLs."""

    public_url: str
    signer: TokenSigner

    def token(self, subscriber_id: int) -> str:
        return self.signer.manage_token(subscriber_id)

    def unsubscribe(self, token: str) -> str:
        return f"{self.public_url}/unsubscribe/{token}"

    def preferences(self, token: str) -> str:
        return f"{self.public_url}/preferences/{token}"


@dataclass(frozen=True)
class SendReport:
    issue_id: int
    recorded: int
    submitted: int
    failed: int
    ambiguous: int
    per_segment: Counter[str]
    finished: bool
    in_flight_elsewhere: int = 0
    """Batches other live workers still hold: the issue finishes when they do."""


def worker_id() -> str:
    """Who holds a lease: this machine and process (and a nonce, as pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def local_worker_alive(worker: str) -> bool:
    """False only for a process on this machine that no longer exists; a worker elsewhere is
    presumed alive until its lease runs out."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def record_recipients(
    engine: Engine, rendered: RenderedIssue, batch_size: int, now: datetime
) -> int:
    """Write the batches and a pending delivery for every active subscriber with topics in
    this issue, once: the first worker to move the issue from planned to sending records it
    (the others wait for its transaction, then find nothing to record)."""
    issue = rendered.issue
    assert issue.id is not None
    with engine.begin() as conn:
        started = conn.execute(
            update(db.issues)
            .where(db.issues.c.id == issue.id, db.issues.c.status == repository.ISSUE_PLANNED)
            .values(status=repository.ISSUE_SENDING)
        ).rowcount
        if not started:
            return 0
        members = SubscriberStore(conn).segment_members(issue.topic_slugs, now)
        batches = plan_batches(((sid, encode_key(key)) for sid, key in members), batch_size)
        return ledger.record(conn, issue.id, batches, now)


@dataclass(frozen=True)
class _Prepared:
    claimed: ledger.Claimed
    batch: OutgoingBatch
    skipped: dict[int, str]
    """delivery id → why it is not sent (no longer active)"""
    delivery_of: dict[int, int]
    """subscriber id → delivery id"""


def send_issue(
    engine: Engine,
    rendered: RenderedIssue,
    transport: Transport,
    envelope: Envelope,
    links: Links,
    clock: Callable[[], datetime],
    *,
    batch_size: int = 1000,
    in_flight: int = 1,
    ambiguous_policy: AmbiguousPolicy = "skip",
    lease: timedelta = DEFAULT_LEASE,
    alive: Callable[[str], bool] = local_worker_alive,
    on_batch: Callable[[int], None] | None = None,
) -> SendReport:
    issue = rendered.issue
    assert issue.id is not None
    issue_id = issue.id
    with engine.begin() as conn:
        ledger.expire(conn, issue_id, clock(), alive)
        ambiguous = ledger.counts(conn, issue_id)[ledger.AMBIGUOUS]
        if ambiguous_policy == "resend":
            ledger.requeue_ambiguous(conn, issue_id, clock())
    recorded = record_recipients(engine, rendered, batch_size, clock())

    worker = worker_id()
    compiled: dict[str, CompiledVariant] = {}

    def prepare(claimed: ledger.Claimed) -> _Prepared:
        if claimed.segment not in compiled:
            variant = rendered.variant(decode_key(claimed.segment))
            compiled[claimed.segment] = CompiledVariant.of(variant, links.public_url)
        with engine.connect() as conn:
            found = ledger.members(conn, claimed.id)
        now = clock()
        recipients: list[Recipient] = []
        skipped: dict[int, str] = {}
        delivery_of: dict[int, int] = {}
        for m in found:
            if m.status != Status.ACTIVE.value or (
                m.paused_until is not None and m.paused_until > now
            ):
                skipped[m.delivery_id] = "no longer active"
                continue
            delivery_of[m.subscriber_id] = m.delivery_id
            token = links.token(m.subscriber_id)
            first_name = m.name.split()[0] if m.name.strip() else "there"
            personal = Personal(
                m.email,
                m.name,
                links.unsubscribe(token),
                message_id(issue_id, m.subscriber_id, envelope.from_email),
            )
            values = recipient_values(first_name, m.email, token)
            recipients.append(Recipient(m.subscriber_id, personal, values))
        batch = OutgoingBatch(
            issue_id,
            issue.digest,
            issue.number,
            envelope,
            compiled[claimed.segment],
            tuple(recipients),
        )
        return _Prepared(claimed, batch, skipped, delivery_of)

    submitted = failed = 0
    per_segment: Counter[str] = Counter()
    stop: TransportError | None = None

    def settle(prepared: _Prepared, outcome: Future[Mapping[int, str]] | None) -> None:
        nonlocal submitted, failed, ambiguous, stop
        batch_id = prepared.claimed.id
        size = len(prepared.batch.recipients) + len(prepared.skipped)
        try:
            refused = outcome.result() if outcome is not None else {}
        except DeliveryUnknown as err:
            with engine.begin() as conn:
                ambiguous += ledger.mark_unknown(conn, batch_id, str(err), clock())
            return
        except BatchRejected as err:
            refused = {r.subscriber_id: str(err) for r in prepared.batch.recipients}
        except TransportError as err:
            with engine.begin() as conn:
                failed += ledger.fail(conn, batch_id, str(err), clock())
            stop = stop or err
            return
        failures = {
            **prepared.skipped,
            **{prepared.delivery_of[s]: reason for s, reason in refused.items()},
        }
        with engine.begin() as conn:
            ok = ledger.settle(conn, batch_id, failures, clock())
        submitted += ok
        failed += len(failures)
        per_segment[prepared.claimed.segment] += ok
        if on_batch is not None:
            on_batch(size)

    threads = max(1, in_flight if transport.concurrent else 1)
    running: dict[Future[Mapping[int, str]], _Prepared] = {}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send") as pool:
        try:
            exhausted = False
            while True:
                while stop is None and not exhausted and len(running) < threads:
                    now = clock()
                    with engine.begin() as conn:
                        claimed = ledger.claim(conn, issue_id, 1, worker, now, now + lease)
                    if not claimed:
                        exhausted = True
                        break
                    prepared = prepare(claimed[0])
                    if prepared.batch.recipients:
                        running[pool.submit(transport.deliver, prepared.batch)] = prepared
                    else:
                        settle(prepared, None)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(running[future], future)
                    del running[future]
        except BaseException:
            # A bug or Ctrl-C: let the requests under way finish, then record what is known.
            # Whatever cannot be settled was handed over with an unknown fate.
            wait(running)
            for future, prepared in running.items():
                try:
                    settle(prepared, future)
                except BaseException:
                    with engine.begin() as conn:
                        ledger.mark_unknown(conn, prepared.claimed.id, "send interrupted", clock())
            with engine.begin() as conn:
                ledger.release(conn, issue_id, worker, "send interrupted", clock())
            raise
    if stop is not None:
        raise stop

    with engine.begin() as conn:
        remaining = ledger.open_batches(conn, issue_id)
        finished = not remaining
        if finished:
            repository.set_issue_status(conn, issue_id, repository.ISSUE_SENT, clock())
    return SendReport(
        issue_id,
        recorded,
        submitted,
        failed,
        ambiguous,
        per_segment,
        finished,
        remaining[ledger.SUBMITTING],
    )
