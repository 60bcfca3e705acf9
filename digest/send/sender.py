"""The sender: one worker's part of a send, from leasing batches to recording what became of
them.

The leasing thread only talks to the database: each transaction records the outcomes of
every batch finished so far and leases the next few, kept in reserve so that a finished
request is followed by the next at once. The threads that hand batches over read their
recipients (on a connection of their own), prepare and send them: reading a batch's
subscribers is the database's slowest part of a send, and done by the leasing thread it
made that thread the bottleneck.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, QueuePool

from digest.errors import BatchRejected, DeliveryUnknown, ProviderDown, TransportError
from digest.render import RenderedIssue
from digest.segment import decode_key
from digest.send import leases, recording
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient
from digest.send.message import Envelope
from digest.send.transport import Transport
from subscribers.models import first_name_of
from subscribers.names import usable_name
from subscribers.tokens import TokenSigner

COMPILED_KEPT = 8
SENDING_CACHE_KIB = 4096
"""SQLite's page cache for each sending thread's connection, which reads a batch's few
pages of an index and writes one row: four threads with the default of the connections that
record the issue (:data:`digest.db.SQLITE_CACHE_KIB`) held the same pages four times, a
hundred megabytes of a million-recipient send."""
RECORDING_POLL_SECONDS = 0.02
"""How soon a worker that found nothing to lease looks again while the issue is recorded."""


@dataclass(frozen=True)
class Links:
    """Where links lead, and the signed token that makes them personal (the URLs themselves
    are bound into the variant once, see :func:`digest.personalize.bind_links`)."""

    public_url: str
    signer: TokenSigner


class OwnRecording(Protocol):
    """This worker's own recording of the issue, going on beside the sender."""

    def running(self) -> bool: ...


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


NOT_OURS = ProviderDown("the batch's lease ran out before it was handed over", where="ledger")
"""The answer of a batch that was no longer this worker's to hand over: nothing to record."""

_Handed = tuple[_Prepared, "Mapping[int, str] | TransportError"]
"""A batch as it was handed over, and the answer: the refused recipients, or the error."""

Outcome = tuple[_Leased, "Future[_Handed]"]


class _Flight:
    """The batches between their lease and the record of their outcome, and when to lease
    more."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.running: dict[Future[_Handed], _Leased] = {}
        """Handed to the pool as soon as leased: under way, or queued behind ``threads`` others
        (the reserve). The pool goes on with the queue while the leasing thread waits for the
        database, as it does on SQLite while a recording group holds the one write lock."""
        self.finished: list[Outcome] = []
        """Answered; their outcomes go into the next transaction."""
        self.drained = False
        """No batch was left to lease at the last look, and none can come."""
        self.look_again = 0.0
        """While the issue is being recorded and nothing was left to lease: not before then."""

    def wanted(self, stopped: bool) -> int:
        """Batches to lease now: a request per thread, and as many again in reserve."""
        return 0 if self.drained or stopped else 2 * self.threads - len(self.running)

    def waiting(self) -> bool:
        """Too soon to look for more batches (the issue is still being recorded)."""
        return time.monotonic() < self.look_again

    def until_look_again(self) -> float:
        return max(0.0, self.look_again - time.monotonic())

    def transaction_due(self, want: int, waiting: bool) -> bool:
        """A transaction when half the requests have finished, or half the reserve is gone,
        or nothing else can happen."""
        finished, running, threads = self.finished, self.running, self.threads
        queued = max(0, len(running) - threads)
        return bool(finished and (len(finished) * 2 >= threads or not running)) or bool(
            want and not waiting and queued * 2 <= threads
        )

    def add(
        self,
        more: list[_Leased],
        want: int,
        still_recording: bool,
        submit: Callable[[_Leased], Future[_Handed]],
    ) -> None:
        """Hand the batches just leased to the pool. Fewer than ``want`` means none are left,
        or, while the issue is being recorded, none yet: look again soon."""
        if len(more) < want:
            if still_recording:
                self.look_again = time.monotonic() + RECORDING_POLL_SECONDS
            else:
                self.drained = True
        for leased in more:
            self.running[submit(leased)] = leased

    def wait_for_answers(self, waiting: bool) -> None:
        """Until a request finishes, or (while waiting to look again) that time comes."""
        timeout = self.until_look_again() if waiting else None
        done, _ = wait(self.running, timeout=timeout, return_when=FIRST_COMPLETED)
        self.finished += [(self.running.pop(future), future) for future in done]

    def cancel_queued(self) -> list[_Leased]:
        """Take the batches the pool has not started out of ``running``: never handed over."""
        cancelled = [future for future in self.running if future.cancel()]
        return [self.running.pop(future) for future in cancelled]


class Sender:
    """One worker's part of a send: lease batches, hand them over, record what happened."""

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
        own_recording: OwnRecording | None,
        alive: Callable[[str], bool],
        written: leases.Written | None = None,
    ) -> None:
        self.engine = engine
        self.rendered = rendered
        self.envelope = envelope
        self.links = links
        self.clock = clock
        self.lease = lease
        self.on_batch = on_batch
        self.worker = worker
        self.own_recording = own_recording
        """This worker's own recording of the issue, when it records it."""
        self.alive = alive
        self.written = written
        """What the transport can tell it has of a batch (the outbox), else None."""
        self.recording_ended = False
        """The issue's recording was seen ended: no more batches will come."""
        self.compiled: dict[str, CompiledVariant] = {}
        self.submitted = self.failed = self.ambiguous = 0
        self.per_segment: Counter[str] = Counter()
        self.stop: TransportError | None = None
        """What stopped the send (ProviderDown): raised by :meth:`run` once it has wound up."""
        self._threads_own = threading.local()
        self._opened: list[Connection] = []
        self._opening = threading.Lock()

    @property
    def issue_id(self) -> int:
        assert self.rendered.issue.id is not None
        return self.rendered.issue.id

    def run(self, transport: Transport, threads: int) -> None:
        """Send every batch this worker can lease, with ``threads`` requests under way."""
        flight = _Flight(threads)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send") as pool:

            def submit(leased: _Leased) -> Future[_Handed]:
                return pool.submit(self.hand_over, transport, leased)

            try:
                while self.turn(flight, submit):
                    pass
            except BaseException:
                self.wind_up(flight)
                raise
            finally:
                pool.shutdown()
                self._close_thread_connections()
        if self.stop is not None:
            raise self.stop

    def _thread_connection(self) -> Connection:
        """This sending thread's own connection, committing each statement (AUTOCOMMIT), kept
        for the whole send and closed at its end: checking one out of the pool for every
        batch (and resetting its isolation level on the way back) cost a sending thread a
        sixth of its time in a send of small segments.

        Detached from a queue pool, so that it holds none of its places: ``in_flight`` may be
        larger than the pool, and the leasing and recording threads still get theirs."""
        conn: Connection | None = getattr(self._threads_own, "conn", None)
        if conn is None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            if isinstance(self.engine.pool, QueuePool):
                conn.detach()
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql(f"PRAGMA cache_size={-SENDING_CACHE_KIB}")
            self._threads_own.conn = conn
            with self._opening:
                self._opened.append(conn)
        return conn

    def _close_thread_connections(self) -> None:
        with self._opening:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()

    def turn(self, flight: _Flight, submit: Callable[[_Leased], Future[_Handed]]) -> bool:
        """One turn of the loop: a transaction (record outcomes, lease more), or a wait for
        answers or for batches still being recorded. False when nothing is left to do."""
        if self.stop is not None:
            self.give_back(flight.cancel_queued())
        want = flight.wanted(stopped=self.stop is not None)
        waiting = flight.waiting()
        if flight.transaction_due(want, waiting):
            more, still_recording = self.step(flight.finished, want)
            flight.finished = []
            flight.add(more, want, still_recording, submit)
            return True
        if not flight.running:
            if want and waiting:
                time.sleep(flight.until_look_again())
                return True
            return False
        flight.wait_for_answers(waiting)
        return True

    def wind_up(self, flight: _Flight) -> None:
        """After a bug, Ctrl-C or a database that failed: batches never handed over go back to
        pending; the requests under way finish, then what is known is recorded. What cannot
        be recorded (the database is gone) is left as it is: the next run finds the batches
        this worker handed over ambiguous (or, from an outbox, settled by the files written),
        and the others pending (:func:`leases.expire`)."""
        never_sent = flight.cancel_queued()
        wait(flight.running)
        finished = flight.finished + [(leased, future) for future, leased in flight.running.items()]
        # The error that stopped the send is re-raised by run; these add none of their own (a
        # batch whose request died with a BaseException is released below).
        for leased, future in finished:
            with contextlib.suppress(BaseException), self.engine.begin() as conn:
                self.record_outcomes(conn, [(leased, future)])
        with contextlib.suppress(Exception):
            self.give_back(never_sent)
        with contextlib.suppress(Exception), self.engine.begin() as conn:
            leases.release(
                conn, self.issue_id, self.worker, "send interrupted", self.clock(), self.written
            )

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
        if self.own_recording is not None:
            still = self.own_recording.running()
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
        """In a sending thread: read the batch's recipients, prepare it, mark it handed (one
        write: from here on, a death leaves it ambiguous), hand it over."""
        batch_id = leased.claimed.id
        # No transaction around the two statements (no BEGIN and ROLLBACK round trips).
        conn = self._thread_connection()
        members = leases.members(conn, batch_id, self.clock())
        prepared = self.prepare(leased, members)
        if not prepared.batch.recipients:
            return prepared, {}
        if not leases.hand(conn, batch_id, self.worker):
            return prepared, NOT_OURS
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
        # A name the rule refuses (stored before it, or by a way in that forgot it) is no
        # name: the address alone in the header, "there" in the greeting.
        names = [usable_name(m.name) for m in active]
        recipients = tuple(
            Recipient(id_, email, name, first_name_of(name) or "there", token)
            for (id_, email, _, _), name, token in zip(active, names, tokens, strict=True)
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
            if answer is NOT_OURS:
                continue
            if isinstance(answer, DeliveryUnknown):
                if answer.progress:
                    accepted.append(self.split(conn, prepared, answer, now))
                else:
                    self.ambiguous += leases.mark_unknown(conn, batch_id, str(answer), now)
                continue
            if isinstance(answer, BatchRejected):
                answer = {r.subscriber_id: str(answer) for r in prepared.batch.recipients}
            elif isinstance(answer, TransportError):
                # ProviderDown: the provider took nothing more (a refused key, a server gone or
                # failing every try, a full disk): the send stops, and what the batch had not
                # handed over waits for the next one, not failed for good. Batches the pool
                # started before the stop was seen end here too.
                self.stop = self.stop or answer
                if isinstance(answer, ProviderDown) and answer.progress:
                    accepted.append(self.split(conn, prepared, answer, now))
                else:
                    not_taken.append(batch_id)
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

    def split(
        self, conn: Connection, prepared: _Prepared, stop: TransportError, now: datetime
    ) -> tuple[_Prepared, dict[int, str]]:
        """A batch the transport handed over only in part (it stopped partway, or one of its
        requests went unanswered): the recipients it never handed over go into a pending
        batch of their own, the ones whose message was on its way when it failed into an
        ambiguous one; the rest settle (taken, or refused with why)."""
        progress = stop.progress
        done = progress.taken | progress.refused.keys() | progress.unknown
        rest = [r.subscriber_id for r in prepared.batch.recipients if r.subscriber_id not in done]
        claimed = leases.split_off(conn, self.issue_id, prepared.claimed, rest, now)
        claimed = leases.split_off(
            conn, self.issue_id, claimed, progress.unknown, now, unknown=str(stop)
        )
        self.ambiguous += len(progress.unknown)
        return replace(prepared, claimed=claimed), {**prepared.skipped, **progress.refused}
