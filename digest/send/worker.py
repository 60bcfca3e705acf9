"""A worker's part of sending an issue (:func:`send_issue`): who the worker is, the recording
of the issue's deliveries in a thread of its own, and the sender (:mod:`digest.send.sender`)
that leases the batches and hands them over.

Running again resumes: batches a dead worker had handed over become ``ambiguous`` and are
reported, and re-sent only when the policy says ``resend``; those it held and never handed
over are pending again.
"""

from __future__ import annotations

import contextlib
import gc
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, Select

from digest import db, segment
from digest.lifecycle import IssueStatus
from digest.render import RenderedIssue
from digest.send import leases, recording, reporting
from digest.send.ledger import AMBIGUOUS
from digest.send.message import Envelope
from digest.send.sender import Links, Sender
from digest.send.transport import Transport
from digest.stores.issues import set_issue_status

AmbiguousPolicy = Literal["skip", "resend"]
Narrow = Callable[[Select[int, str, str, str]], Select[int, str, str, str]]
"""Narrows the members a recording selects (:func:`digest.segment.in_zones`)."""
DEFAULT_LEASE = timedelta(minutes=10)


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


class _RecordingThread:
    """This worker's recording of an issue (:func:`recording.record`), in a thread of its
    own: sending starts with the first group of batches while the next ones are written."""

    def __init__(
        self,
        engine: Engine,
        rendered: RenderedIssue,
        batch_size: int,
        recorder: recording.Recorder,
        narrow: Narrow | None = None,
        final: bool = True,
    ) -> None:
        self.narrow = narrow
        self.final = final
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
                        conn, issue.topic_slugs, self.recorder.clock(), segment.Owing.of(issue)
                    )
                members = segmentation.addressed if segmentation else None
                if members is not None and self.narrow is not None:
                    members = self.narrow(members)
                self.recorded = recording.record(
                    conn,
                    issue.id,
                    members,
                    lambda topics: segmentation.key(topics) if segmentation else "",
                    self.batch_size,
                    self.recorder,
                    proceed=lambda: not self.stopping.is_set(),
                    final=self.final,
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
    written: leases.Written | None = None,
    narrow: Narrow | None = None,
    final: bool = True,
    may_record: bool = True,
) -> SendReport:
    """Record the issue's recipients (or finish a recording left unfinished) and send every
    batch this worker can lease, sending from the first recorded group on; several workers
    may share the batches. ``written``: what the transport has of a batch, when it can tell
    (the outbox): a batch a dead worker handed over is then settled by it, not ambiguous.

    ``narrow`` and ``final`` send one local-time wave: ``narrow`` restricts who is recorded
    (the readers the wave is due for), and a wave that is not ``final`` leaves the issue
    unrecorded, and so sending, for the next wave (:func:`recording.record`). ``may_record``
    False leaves the recording to others: this worker only sends batches they record."""
    with _database_faults(engine):
        issue_id = rendered.issue.id
        assert issue_id is not None
        worker = worker_id()
        recorder = recording.Recorder(worker, clock, lease)
        with engine.begin() as conn:
            leases.expire(conn, issue_id, clock(), alive, written)
            ambiguous = reporting.counts(conn, issue_id)[AMBIGUOUS]
            if ambiguous_policy == "resend":
                leases.requeue_ambiguous(conn, issue_id, clock())
            records = may_record and recording.take_recording(conn, issue_id, recorder, alive)
        with _young_objects_only():
            own_recording = (
                _RecordingThread(engine, rendered, batch_size, recorder, narrow, final)
                if records
                else None
            )
            sender = Sender(
                engine,
                rendered,
                envelope,
                links,
                clock,
                lease,
                on_batch,
                worker,
                own_recording,
                alive,
                written,
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
                set_issue_status(conn, issue_id, IssueStatus.SENT, clock())
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
def _database_faults(engine: Engine) -> Iterator[None]:
    """A database that fails during a send (gone, full, read-only, corrupt) stops it with one
    line naming ``database_url``. Whatever was not recorded stays as the ledger has it: the
    next run finds the batches this worker handed over ambiguous, and the others pending."""
    try:
        yield
    except Exception as err:
        if not db.driver_error(engine, err):
            raise
        raise db.failed(engine, err, "the send stopped on") from None


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
