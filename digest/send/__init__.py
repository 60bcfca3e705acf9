"""send: an issue's variants → every recipient, exactly once, through a transport.

Delivery rows, grouped into batches, are written before anything is sent; batches are leased
by a worker, handed to the transport (several requests in flight when the transport allows
it) and marked. Running again resumes: batches a dead worker left ``submitting`` become
``ambiguous`` and are reported, and re-sent only when the policy says ``resend``.
"""

from __future__ import annotations

import gc
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from sqlalchemy import Connection, Engine, update

from digest import db, repository
from digest.errors import BatchRejected, DeliveryUnknown, TransportError
from digest.render import RenderedIssue
from digest.send import ledger
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient
from digest.send.message import Envelope
from subscribers.models import first_name_of
from subscribers.segments import decode_key, encode_key
from subscribers.store import SubscriberStore
from subscribers.tokens import TokenSigner

AmbiguousPolicy = Literal["skip", "resend"]
DEFAULT_LEASE = timedelta(minutes=10)
COMPILED_KEPT = 8


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
    """Where links lead, and the signed token that makes them personal (the URLs themselves
    are bound into the variant once, see :func:`digest.personalize.bind_links`)."""

    public_url: str
    signer: TokenSigner


@dataclass(frozen=True)
class SendReport:
    issue_id: int
    recorded: int
    submitted: int
    failed: int
    ambiguous: int
    per_segment: Counter[str]
    finished: bool


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
    with engine.begin() as conn, _young_objects_only():
        started = conn.execute(
            update(db.issues)
            .where(db.issues.c.id == issue.id, db.issues.c.status == repository.ISSUE_PLANNED)
            .values(status=repository.ISSUE_SENDING)
        ).rowcount
        if not started:
            return 0
        segmentation = SubscriberStore(conn).segmentation(issue.topic_slugs, now)
        if segmentation is None:
            return 0
        return ledger.record(
            conn,
            issue.id,
            segmentation.query,
            lambda topics: encode_key(segmentation.topics(topics)),
            batch_size,
            now,
        )


@dataclass(frozen=True)
class _Prepared:
    claimed: ledger.Claimed
    batch: OutgoingBatch
    skipped: dict[int, str]
    """subscriber id → why it is not sent (no longer active)"""

    @property
    def size(self) -> int:
        return len(self.batch.recipients) + len(self.skipped)


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
    issue_id = rendered.issue.id
    assert issue_id is not None
    with engine.begin() as conn:
        ledger.expire(conn, issue_id, clock(), alive)
        ambiguous = ledger.counts(conn, issue_id)[ledger.AMBIGUOUS]
        if ambiguous_policy == "resend":
            ledger.requeue_ambiguous(conn, issue_id, clock())
    with _young_objects_only():
        recorded = record_recipients(engine, rendered, batch_size, clock())
        sender = _Sender(engine, rendered, envelope, links, clock, lease, on_batch)
        sender.ambiguous = ambiguous
        sender.run(transport, max(1, in_flight if transport.concurrent else 1))

    with engine.begin() as conn:
        remaining = ledger.open_batches(conn, issue_id)
        finished = not remaining
        if finished:
            repository.set_issue_status(conn, issue_id, repository.ISSUE_SENT, clock())
    return SendReport(
        issue_id,
        recorded,
        sender.submitted,
        sender.failed,
        sender.ambiguous,
        sender.per_segment,
        finished,
    )


@contextmanager
def _young_objects_only() -> Iterator[None]:
    """Keep Python's cycle collector off the heap that exists before a send.

    A send allocates a few million short-lived dicts and tuples (rows, payloads); each
    allocation burst made the collector rescan everything the process had loaded (SQLAlchemy,
    Jinja, the rendered issue), which cost about as much as building the payloads. Frozen
    objects are left out of collections until the send ends; what the send itself creates is
    collected as usual, with a larger first generation."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 50_000), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


Outcome = tuple[_Prepared, "Future[Mapping[int, str]] | None"]


class _Sender:
    """One worker's part of a send: lease batches, hand them over, record what happened.

    Each database transaction records the outcomes of the batches that just finished and
    leases the next ones (reading their recipients), so a batch costs one commit."""

    def __init__(
        self,
        engine: Engine,
        rendered: RenderedIssue,
        envelope: Envelope,
        links: Links,
        clock: Callable[[], datetime],
        lease: timedelta,
        on_batch: Callable[[int], None] | None,
    ) -> None:
        self.engine = engine
        self.rendered = rendered
        self.envelope = envelope
        self.links = links
        self.clock = clock
        self.lease = lease
        self.on_batch = on_batch
        self.worker = worker_id()
        self.compiled: dict[str, CompiledVariant] = {}
        self.submitted = self.failed = self.ambiguous = 0
        self.per_segment: Counter[str] = Counter()
        self.stop: TransportError | None = None

    @property
    def issue_id(self) -> int:
        assert self.rendered.issue.id is not None
        return self.rendered.issue.id

    def run(self, transport: Transport, threads: int) -> None:
        running: dict[Future[Mapping[int, str]], _Prepared] = {}
        finished: list[Outcome] = []
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send") as pool:
            try:
                while True:
                    want = threads - len(running) if self.stop is None else 0
                    claimed = self.step(finished, want)
                    finished = []
                    for prepared in claimed:
                        if prepared.batch.recipients:
                            running[pool.submit(transport.deliver, prepared.batch)] = prepared
                        else:
                            finished.append((prepared, None))
                    if finished:
                        continue
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    finished = [(running.pop(future), future) for future in done]
            except BaseException:
                # A bug or Ctrl-C: let the requests under way finish, then record what is
                # known; a batch whose outcome cannot be recorded has an unknown fate.
                wait(running)
                finished += [(prepared, future) for future, prepared in running.items()]
                for prepared, future in finished:
                    try:
                        with self.engine.begin() as conn:
                            self.record_outcome(conn, prepared, future)
                    except BaseException:  # the first error is re-raised below
                        with self.engine.begin() as conn:
                            ledger.mark_unknown(
                                conn, prepared.claimed.id, "send interrupted", self.clock()
                            )
                with self.engine.begin() as conn:
                    ledger.release(
                        conn, self.issue_id, self.worker, "send interrupted", self.clock()
                    )
                raise
        if self.stop is not None:
            raise self.stop

    def step(self, finished: list[Outcome], want: int) -> list[_Prepared]:
        """One transaction: record the finished batches, lease up to ``want`` more."""
        with self.engine.begin() as conn:
            for prepared, future in finished:
                self.record_outcome(conn, prepared, future)
            if want <= 0:
                return []
            now = self.clock()
            claimed = ledger.claim(conn, self.issue_id, want, self.worker, now, now + self.lease)
            found = ledger.members(conn, [c.id for c in claimed], now)
        return [self.prepare(c, found.get(c.id, [])) for c in claimed]

    def prepare(self, claimed: ledger.Claimed, members: list[ledger.Member]) -> _Prepared:
        issue = self.rendered.issue
        variant = self.compiled.pop(claimed.segment, None)
        if variant is None:
            variant = CompiledVariant.of(
                self.rendered.variant(decode_key(claimed.segment)), self.links.public_url
            )
        # Batches of a segment are leased one after the other: keeping the last few compiled
        # variants is enough, and keeps a send of hundreds of variants small in memory.
        self.compiled[claimed.segment] = variant
        while len(self.compiled) > COMPILED_KEPT:
            del self.compiled[next(iter(self.compiled))]
        now = self.clock()
        active = [m for m in members if m.active]
        skipped = {m.subscriber_id: "no longer active" for m in members if not m.active}
        tokens = self.links.signer.manage_tokens([m.subscriber_id for m in active], now)
        recipients = tuple(
            Recipient(m.subscriber_id, m.email, m.name, first_name_of(m.name) or "there", token)
            for m, token in zip(active, tokens, strict=True)
        )
        batch = OutgoingBatch(
            self.issue_id,
            issue.digest,
            issue.number,
            self.envelope,
            variant,
            recipients,
            self.links.public_url,
        )
        return _Prepared(claimed, batch, skipped)

    def record_outcome(
        self, conn: Connection, prepared: _Prepared, future: Future[Mapping[int, str]] | None
    ) -> None:
        batch_id, now = prepared.claimed.id, self.clock()
        try:
            refused = future.result() if future is not None else {}
        except DeliveryUnknown as err:
            self.ambiguous += ledger.mark_unknown(conn, batch_id, str(err), now)
            return
        except BatchRejected as err:
            refused = {r.subscriber_id: str(err) for r in prepared.batch.recipients}
        except TransportError as err:
            self.failed += ledger.fail(conn, batch_id, str(err), now)
            self.stop = self.stop or err
            return
        failures = {**prepared.skipped, **refused}
        ok = ledger.settle(conn, prepared.claimed, failures, now)
        self.submitted += ok
        self.failed += len(failures)
        self.per_segment[prepared.claimed.segment] += ok
        if self.on_batch is not None:
            self.on_batch(prepared.size)
