"""Where the crash-resume test (:mod:`tests.digest.send.test_exactly_once`) kills a sending
child: each kill point is an event at the process's boundary (a request the local SendGrid
server holds, an answer the child has read while the test holds the ledger's lock), so the
SIGKILL lands there whatever the machine's load, never after a sleep that may be too short.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from digest import db
from tests.held_requests import PATIENCE_SECONDS, Child, Hold
from tests.sendgrid_server import SendGridServer

IN_FLIGHT = 4
"""Requests a sending child has under way at once (``sending.in_flight``)."""
CHILD_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}


@dataclass(frozen=True)
class KillPoint:
    """A run of the sender killed while the server holds its requests."""

    name: str
    first: int
    """The request of the run from which on the server holds every request."""
    held: int = 1
    """How many of them are held when the sender is killed."""
    taken: bool = True
    """The server has taken the held requests (the provider has them, no answer has left);
    if not, it drops them unanswered after the kill (lost before the provider took them)."""
    answered: bool = False
    """The ``first`` request is answered while the test holds the ledger's lock, and the
    sender is killed once it has read that answer: accepted, its outcome never recorded."""


KILL_POINTS = (
    KillPoint("its 1st request held, taken", 1),
    KillPoint("its 3rd to 6th requests held together, lost", 3, held=IN_FLIGHT, taken=False),
    KillPoint("its 2nd request answered and read, the outcome not recorded", 2, answered=True),
    KillPoint("a later request held, taken", 9),
    # With resend, the first batches of this run are the ones found ambiguous, sent again.
    KillPoint("its 1st request held again, taken", 1),
)


def run_and_kill(
    server: SendGridServer,
    command: Sequence[str],
    base: str,
    point: KillPoint,
    url: str,
    start: Callable[[Sequence[str]], Child] | None = None,
) -> Hold:
    """Start the sender (its requests go to ``base`` on the server), SIGKILL it at ``point``;
    the hold, to see what it caught (requests the dead sender had posted may still arrive
    after the kill: they are held too, and taken or lost as the point says). ``start``: how
    the sender is started (default: a new process running ``command``)."""
    hold = server.holds[base] = Hold(point.first, taken=point.taken)
    child = start(command) if start is not None else subprocess.Popen(command, env=CHILD_ENV)
    try:
        hold.wait_held(point.held, child)
        if point.answered:
            with ledger_locked(url):
                hold.wait_read(hold.answer(point.first))
                kill(child)
        kill(child)
    finally:
        kill(child)
        hold.release()
    settle(url)
    return hold


def settle(url: str) -> None:
    """Until the dead sender's database work is over. SIGKILL ends the process, not the
    statement its PostgreSQL backend was running: a COMMIT under way when the sender died
    still lands, after the kill. A ledger read before it would miss that commit (a batch
    marked handed, seen as not yet handed), so the test waits until every other session of
    the database is idle outside a transaction (one inside a transaction may still have the
    dead sender's COMMIT unread in its socket). SQLite has no server: its commit is over or
    never was."""
    if url.startswith("sqlite"):
        return
    engine = db.make_engine(url)
    busy = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state <> 'idle'"
    )
    deadline = time.monotonic() + PATIENCE_SECONDS
    try:
        with engine.connect() as conn:
            while conn.execute(busy).scalar():
                assert time.monotonic() < deadline, "the dead sender's statement never ended"
                conn.rollback()
                time.sleep(0.01)
    finally:
        engine.dispose()


def kill(child: Child) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGKILL)
    child.wait()


@contextmanager
def ledger_locked(url: str) -> Iterator[None]:
    """Hold the lock that recording an outcome needs: a sender can still read its batches and
    post them, but records nothing until the lock is let go. On SQLite the database's write
    lock (the child waits for it as long as it takes, see crash_send.py); on PostgreSQL the
    ledger's table, locked against every change."""
    if url.startswith("sqlite:///"):
        locker = sqlite3.connect(
            url.removeprefix("sqlite:///"), timeout=PATIENCE_SECONDS, isolation_level=None
        )
        try:
            locker.execute("BEGIN IMMEDIATE")
            yield
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        return
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn, conn.begin() as transaction:
            conn.execute(text("LOCK TABLE send_batches IN EXCLUSIVE MODE"))
            yield
            transaction.rollback()
    finally:
        engine.dispose()


class ForkServer:
    """tests/digest/send/fork_sender.py, running: each :meth:`start` is a run of the sender
    forked from a process that has the app imported already."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.digest.send.fork_sender"],
            env=CHILD_ENV,
            cwd=Path(__file__).parents[3],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.started: queue.Queue[int] = queue.Queue()
        self.ended: dict[int, int] = {}
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            word, *numbers = line.split()
            if word == "pid":
                self.started.put(int(numbers[0]))
            elif word == "exit":
                with self.changed:
                    self.ended[int(numbers[0])] = int(numbers[1])
                    self.changed.notify_all()
        with self.changed:
            self.ended[-1] = -1  # the server itself has ended
            self.changed.notify_all()

    def start(self, command: Sequence[str]) -> Forked:
        """A run with crash_send.py's arguments (``command`` after the script); its report
        goes to a file beside the config."""
        config, host, policy, key = command[-4:]
        report = Path(config).with_name(f"report-{uuid.uuid4().hex[:8]}.json")
        assert self.process.stdin is not None
        self.process.stdin.write(f"{config} {host} {policy} {key} {report}\n")
        self.process.stdin.flush()
        return Forked(self, self.started.get(timeout=PATIENCE_SECONDS), report)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=PATIENCE_SECONDS)


class Forked:
    """One forked run, watched and killed like a ``subprocess.Popen``."""

    def __init__(self, server: ForkServer, pid: int, report: Path) -> None:
        self.server = server
        self.pid = pid
        self.report_path = report

    @property
    def returncode(self) -> int | None:
        return self.server.ended.get(self.pid)

    def poll(self) -> int | None:
        with self.server.changed:
            return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        with self.server.changed:
            assert self.server.changed.wait_for(
                lambda: self.pid in self.server.ended or -1 in self.server.ended,
                timeout=timeout or PATIENCE_SECONDS,
            ), f"run {self.pid} never ended"
            return self.server.ended.get(self.pid, -1)

    def report(self) -> dict[str, object]:
        """What a run that was not killed reported (it must have ended well)."""
        assert self.wait() == 0, f"run {self.pid} failed"
        loaded: dict[str, object] = json.loads(self.report_path.read_text(encoding="utf-8"))
        return loaded


@contextmanager
def fork_server() -> Iterator[ForkServer]:
    server = ForkServer()
    try:
        yield server
    finally:
        server.close()
