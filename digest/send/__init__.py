"""send: an issue's variants → every recipient, exactly once, through a transport.

Delivery rows, grouped into batches, are written before their batch is sent (a recording
thread commits them a group of segments at a time, and sending starts with the first);
batches are leased by a worker, handed to the transport (several requests in flight when the
transport allows it) and marked. Running again resumes: batches a dead worker left
``submitting`` become ``ambiguous`` and are reported, and re-sent only when the policy says
``resend``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Literal, Protocol

from sqlalchemy import Connection, Engine

from digest import repository, segment
from digest.errors import BatchRejected, DeliveryUnknown, TransportError
from digest.render import RenderedIssue
from digest.segment import decode_key
from digest.send import leases, recording, reporting
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient
from digest.send.ledger import AMBIGUOUS
from digest.send.message import Envelope
from subscribers.models import first_name_of
from subscribers.tokens import TokenSigner

AmbiguousPolicy = Literal["skip", "resend"]
DEFAULT_LEASE = timedelta(minutes=10)
COMPILED_KEPT = 8
RECORDING_POLL_SECONDS = 0.02
"""How soon a worker that found nothing to lease looks again while the issue is recorded."""


class Transport(Protocol):
    """Every method raises a :class:`digest.errors.TransportError` when it hands nothing
    over: BatchRejected when the provider refused this batch or message (a send goes on with
    the next batch), DeliveryUnknown when it was handed over without an answer, ProviderDown
    when nothing more can be sent (a send stops)."""

    name: str
    concurrent: bool
    """Whether ``deliver`` may run in several threads at once."""

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        """Hand the batch over; return the subscriber ids refused, with reasons."""
        ...

    def send_message(self, message: EmailMessage) -> None:
        """Hand one finished message over, outside any issue's ledger."""
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


class _Recording:
    """This worker's recording of an issue (:func:`recording.record`), in a thread of its own:
    sending starts with the first group of batches while the next ones are written."""

    def __init__(
        self,
        engine: Engine,
        rendered: RenderedIssue,
        batch_size: int,
        recorder: recording.Recorder,
    ) -> None:
        self.engine = engine
        self.rendered = rendered
        self.batch_size = batch_size
        self.recorder = recorder
        self.recorded = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="record", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        issue = self.rendered.issue
        assert issue.id is not None
        try:
            with self.engine.connect() as conn:
                with conn.begin():
                    segmentation = segment.segmentation(
                        conn, issue.topic_slugs, self.recorder.clock()
                    )
                self.recorded = recording.record(
                    conn,
                    issue.id,
                    segmentation.addressed if segmentation else None,
                    lambda topics: segmentation.key(topics) if segmentation else "",
                    self.batch_size,
                    self.recorder,
                    proceed=lambda: not self.stopping.is_set(),
                )
        except BaseException as err:  # handed to the sending thread by result()
            self.error = err

    def running(self) -> bool:
        return self.thread.is_alive()

    def result(self, stop: bool = False) -> int:
        """Deliveries recorded, once the recording has ended (``stop``: between two groups);
        its error, if it failed."""
        if stop:
            self.stopping.set()
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.recorded


@dataclass(frozen=True)
class _Leased:
    """A batch this worker holds, with its variant (compiled by the leasing thread, which
    keeps the few compiled last)."""

    claimed: leases.Claimed
    variant: CompiledVariant


@dataclass(frozen=True)
class _Prepared:
    claimed: leases.Claimed
    batch: OutgoingBatch
    skipped: dict[int, str]
    """subscriber id → why it is not sent (no longer active)"""

    @property
    def size(self) -> int:
        return len(self.batch.recipients) + len(self.skipped)


_Handed = tuple[_Prepared, "Mapping[int, str] | TransportError"]
"""A batch as it was handed over, and the answer: the refused recipients, or the error."""


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
    """Record the issue's recipients (or finish a recording left unfinished) and send every
    batch this worker can lease, sending from the first recorded group on; several workers
    may share the batches."""
    issue_id = rendered.issue.id
    assert issue_id is not None
    worker = worker_id()
    recorder = recording.Recorder(worker, clock, lease)
    with engine.begin() as conn:
        leases.expire(conn, issue_id, clock(), alive)
        ambiguous = reporting.counts(conn, issue_id)[AMBIGUOUS]
        if ambiguous_policy == "resend":
            leases.requeue_ambiguous(conn, issue_id, clock())
        records = recording.take_recording(conn, issue_id, recorder, alive)
    with _young_objects_only():
        own_recording = _Recording(engine, rendered, batch_size, recorder) if records else None
        sender = _Sender(
            engine, rendered, envelope, links, clock, lease, on_batch, worker, own_recording, alive
        )
        sender.ambiguous = ambiguous
        try:
            sender.run(transport, max(1, in_flight if transport.concurrent else 1))
        except BaseException:
            if own_recording is not None:
                with contextlib.suppress(Exception):
                    own_recording.result(stop=True)
            raise
        recorded = own_recording.result() if own_recording is not None else 0

    with engine.begin() as conn:
        remaining = reporting.open_batches(conn, issue_id)
        finished = not remaining and recording.recorded(conn, issue_id)
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


def _cancel_queued(running: dict[Future[_Handed], _Leased]) -> list[_Leased]:
    """Take the batches the pool has not started out of ``running``: never handed over."""
    cancelled = [future for future in running if future.cancel()]
    return [running.pop(future) for future in cancelled]


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


Outcome = tuple[_Leased, "Future[_Handed]"]


class _Sender:
    """One worker's part of a send: lease batches, hand them over, record what happened.

    The leasing thread only talks to the database: each transaction records the outcomes of
    every batch finished so far and leases the next few, kept in reserve so that a finished
    request is followed by the next at once. The threads that hand batches over read their
    recipients (on a connection of their own), prepare and send them: reading a batch's
    subscribers is the database's slowest part of a send, and done by the leasing thread it
    made that thread the bottleneck."""

    def __init__(
        self,
        engine: Engine,
        rendered: RenderedIssue,
        envelope: Envelope,
        links: Links,
        clock: Callable[[], datetime],
        lease: timedelta,
        on_batch: Callable[[int], None] | None,
        worker: str,
        recording: _Recording | None,
        alive: Callable[[str], bool],
    ) -> None:
        self.engine = engine
        self.rendered = rendered
        self.envelope = envelope
        self.links = links
        self.clock = clock
        self.lease = lease
        self.on_batch = on_batch
        self.worker = worker
        self.recording = recording
        """This worker's own recording of the issue, when it records it."""
        self.alive = alive
        self.recording_ended = False
        """The issue's recording was seen ended: no more batches will come."""
        self.compiled: dict[str, CompiledVariant] = {}
        self.submitted = self.failed = self.ambiguous = 0
        self.per_segment: Counter[str] = Counter()
        self.stop: TransportError | None = None

    @property
    def issue_id(self) -> int:
        assert self.rendered.issue.id is not None
        return self.rendered.issue.id

    def run(self, transport: Transport, threads: int) -> None:
        running: dict[Future[_Handed], _Leased] = {}
        """Handed to the pool as soon as leased: under way, or queued behind ``threads`` others
        (the reserve). The pool goes on with the queue while this thread waits for the
        database, as it does on SQLite while a recording group holds the one write lock."""
        finished: list[Outcome] = []
        drained = False
        """No batch was left to lease at the last look, and none can come."""
        look_again = 0.0
        """While the issue is being recorded and nothing was left to lease: not before then."""
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send") as pool:
            try:
                while True:
                    if self.stop is not None:
                        self.give_back(_cancel_queued(running))
                    queued = max(0, len(running) - threads)
                    want = 0 if drained or self.stop is not None else 2 * threads - len(running)
                    waiting = time.monotonic() < look_again
                    # A transaction when half the requests have finished, or half the
                    # reserve is gone, or nothing else can happen.
                    if (finished and (len(finished) * 2 >= threads or not running)) or (
                        want and not waiting and queued * 2 <= threads
                    ):
                        more, recording = self.step(finished, want)
                        finished = []
                        if len(more) < want:
                            if recording:
                                look_again = time.monotonic() + RECORDING_POLL_SECONDS
                            else:
                                drained = True
                        for leased in more:
                            running[pool.submit(self.hand_over, transport, leased)] = leased
                        continue
                    if not running:
                        if want and waiting:
                            time.sleep(max(0.0, look_again - time.monotonic()))
                            continue
                        break
                    timeout = max(0.0, look_again - time.monotonic()) if waiting else None
                    done, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
                    finished += [(running.pop(future), future) for future in done]
            except BaseException:
                # A bug or Ctrl-C: batches never handed over go back to pending; let the
                # requests under way finish, then record what is known (a batch whose outcome
                # cannot be recorded has an unknown fate).
                never_sent = _cancel_queued(running)
                wait(running)
                finished += [(leased, future) for future, leased in running.items()]
                for leased, future in finished:
                    try:
                        with self.engine.begin() as conn:
                            self.record_outcomes(conn, [(leased, future)])
                    except BaseException:  # the first error is re-raised below
                        with self.engine.begin() as conn:
                            leases.mark_unknown(
                                conn, leased.claimed.id, "send interrupted", self.clock()
                            )
                self.give_back(never_sent)
                with self.engine.begin() as conn:
                    leases.release(
                        conn, self.issue_id, self.worker, "send interrupted", self.clock()
                    )
                raise
        if self.stop is not None:
            raise self.stop

    def step(self, finished: list[Outcome], want: int) -> tuple[list[_Leased], bool]:
        """One transaction: record the finished batches, lease up to ``want`` more. Also
        says whether the issue was still being recorded before leasing (when it was, batches
        may come after a short lease; when not, a short lease means none are left)."""
        with self.engine.begin() as conn:
            self.record_outcomes(conn, finished)
            if want <= 0:
                return [], False
            now = self.clock()
            still_recording = self.recording_open(conn, now)
            claimed = leases.claim(conn, self.issue_id, want, self.worker, now, now + self.lease)
        return [_Leased(c, self.variant(c.segment)) for c in claimed], still_recording

    def recording_open(self, conn: Connection, now: datetime) -> bool:
        if self.recording_ended:
            return False
        if self.recording is not None:
            still = self.recording.running()
        else:
            still = recording.recording_open(conn, self.issue_id, now, self.alive)
        self.recording_ended = not still
        return still

    def give_back(self, leased: list[_Leased]) -> None:
        if leased:
            with self.engine.begin() as conn:
                ids = [batch.claimed.id for batch in leased]
                leases.unclaim(conn, ids, self.worker, self.clock())

    def variant(self, segment: str) -> CompiledVariant:
        compiled = self.compiled.pop(segment, None)
        if compiled is None:
            compiled = CompiledVariant.of(
                self.rendered.variant(decode_key(segment)), self.links.public_url
            )
        # Batches of a segment are leased one after the other: keeping the last few compiled
        # variants is enough, and keeps a send of hundreds of variants small in memory.
        self.compiled[segment] = compiled
        while len(self.compiled) > COMPILED_KEPT:
            del self.compiled[next(iter(self.compiled))]
        return compiled

    def hand_over(self, transport: Transport, leased: _Leased) -> _Handed:
        """In a sending thread: read the batch's recipients, prepare it, hand it over."""
        batch_id = leased.claimed.id
        # One query, no transaction around it (no BEGIN and ROLLBACK round trips).
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            members = leases.members(conn, batch_id, self.clock())
        prepared = self.prepare(leased, members)
        if not prepared.batch.recipients:
            return prepared, {}
        try:
            return prepared, transport.deliver(prepared.batch)
        except TransportError as err:
            return prepared, err

    def prepare(self, leased: _Leased, members: list[leases.Member]) -> _Prepared:
        issue = self.rendered.issue
        now = self.clock()
        active = [m for m in members if m.active]
        skipped = {m.subscriber_id: "no longer active" for m in members if not m.active}
        tokens = self.links.signer.manage_tokens([m.subscriber_id for m in active], now)
        recipients = tuple(
            Recipient(id_, email, name, first_name_of(name) or "there", token)
            for (id_, email, name, _), token in zip(active, tokens, strict=True)
        )
        batch = OutgoingBatch(
            self.issue_id,
            issue.digest,
            issue.number,
            self.envelope,
            leased.variant,
            recipients,
            self.links.public_url,
        )
        return _Prepared(leased.claimed, batch, skipped)

    def record_outcomes(self, conn: Connection, finished: list[Outcome]) -> None:
        """What became of each finished batch; the accepted ones settle together."""
        accepted: list[tuple[_Prepared, dict[int, str]]] = []
        not_taken: list[int] = []
        now = self.clock()
        for leased, future in finished:
            batch_id = leased.claimed.id
            prepared, answer = future.result()
            if isinstance(answer, DeliveryUnknown):
                self.ambiguous += leases.mark_unknown(conn, batch_id, str(answer), now)
                continue
            if isinstance(answer, BatchRejected):
                answer = {r.subscriber_id: str(answer) for r in prepared.batch.recipients}
            elif isinstance(answer, TransportError):
                # ProviderDown: the provider took nothing (a refused key, a server gone or
                # failing every try): the send stops, and the batch waits for the next one,
                # not failed for good. Batches the pool started before the stop was seen end
                # here too.
                not_taken.append(batch_id)
                self.stop = self.stop or answer
                continue
            accepted.append((prepared, {**prepared.skipped, **answer}))
        leases.unclaim(conn, not_taken, self.worker, now)
        if not accepted:
            return
        submitted = leases.settle(conn, [(p.claimed, failures) for p, failures in accepted], now)
        for (prepared, failures), ok in zip(accepted, submitted, strict=True):
            self.submitted += ok
            self.failed += len(failures)
            self.per_segment[prepared.claimed.segment] += ok
            if self.on_batch is not None:
                self.on_batch(prepared.size)
