"""Where the crash-resume test (:mod:`tests.digest.send.test_exactly_once`) kills a sending
child: each kill point is an event at the process's boundary (a request the local SendGrid
server holds, an answer the child has read while the test holds the ledger's lock), so the
SIGKILL lands there whatever the machine's load, never after a sleep that may be too short.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from digest import db
from tests.held_requests import PATIENCE_SECONDS, Hold
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
    server: SendGridServer, command: Sequence[str], base: str, point: KillPoint, url: str
) -> Hold:
    """Start the sender (its requests go to ``base`` on the server), SIGKILL it at ``point``;
    the hold, to see what it caught (requests the dead sender had posted may still arrive
    after the kill: they are held too, and taken or lost as the point says)."""
    hold = server.holds[base] = Hold(point.first, taken=point.taken)
    child = subprocess.Popen(command, env=CHILD_ENV)
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
    return hold


def kill(child: subprocess.Popen[bytes]) -> None:
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
