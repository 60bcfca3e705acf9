"""Requests the local SendGrid-compatible server (:mod:`tests.sendgrid_server`) keeps
unanswered until a test says, so that the test acts while they are provably in flight.

A test that must SIGKILL a sender while a batch is in flight, or take a database lock while an
answer is on its way, waits here for the server to say the request has arrived, rather than
sleeping and hoping: on a loaded machine a child process may not even have imported the app
a second and a half after it was started.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol


class Child(Protocol):
    """A sending process as the tests watch and kill it (a ``subprocess.Popen``, or a child
    of the fork server in tests/digest/send/fork_sender.py)."""

    @property
    def returncode(self) -> int | Any: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


Key = tuple[str | None, str | None]
"""A recipient as the server counts it: (issue_id, subscriber_id) from its custom_args."""

PATIENCE_SECONDS = 900.0
"""How long a test waits for an event before it fails: meant to be reached only by a bug (a
request that never comes). On a machine thrashing for memory, a child process has been seen
to take over five minutes just to import the app."""


class Answer(Enum):
    """How the server goes on with a request once it is let go."""

    WAIT = "wait"
    ANSWER = "answer"
    """202, as for any request the provider took."""
    DROP = "drop"
    """The connection closed without an answer: the request was lost before it was taken."""
    WATCHED = "watched"
    """202 with ``Connection: close``; the client closing the connection then tells that it
    has read the answer."""


@dataclass
class Held:
    """One request the hold caught, in arrival order."""

    number: int
    """Among the requests of the hold's tag, counted from 1."""
    recipients: list[Key]
    answer: Answer = Answer.WAIT
    read: threading.Event = field(default_factory=threading.Event)
    """Set once the client has read a WATCHED answer and hung up."""


class Hold:
    """Holds every request from the ``first``-th on (counting the requests sent to one base
    URL), or only ``count`` of them, until :meth:`release`, or :meth:`answer` for one of them.

    ``taken``: the server takes a held request's recipients as it arrives (the provider has
    the batch, the client has no answer yet); when false it drops the request unanswered on
    release, as a provider that lost it before taking it. ``barrier``: once that many are held
    at once, all of them are answered and the hold ends (the test then knows that many were
    in flight together). ``until_hangup``: each held request waits until the client gives up
    and closes the connection (a client that timed out); it was taken, and is never answered.
    """

    def __init__(
        self,
        first: int = 1,
        *,
        count: int = 0,
        taken: bool = True,
        barrier: int = 0,
        until_hangup: bool = False,
    ) -> None:
        self.first = first
        self.count = count
        self.taken = taken
        self.barrier = barrier
        self.until_hangup = until_hangup
        self.seen = 0
        self.passed: list[Held] = []
        """The requests before the ``first``: taken and answered at once."""
        self.held: list[Held] = []
        self.released = False
        self._changed = threading.Condition()

    def arrive(self, recipients: list[Key]) -> Held | None:
        """A request has arrived (valid, with these recipients): None to answer it at once,
        else what it is held as (once released, it is recorded and let go at once)."""
        with self._changed:
            self.seen += 1
            if self.seen < self.first:
                self.passed.append(Held(self.seen, recipients, Answer.ANSWER))
                return None
            if (self.barrier and self.released) or (self.count and len(self.held) == self.count):
                return None
            held = Held(self.seen, recipients)
            if self.released:
                held.answer = self._let_go()
            self.held.append(held)
            if self.barrier and len(self.held) == self.barrier:
                self._release_all()
            self._changed.notify_all()
            return held

    def wait(self, held: Held) -> Answer:
        """In the server's thread: until the request is let go, then how to answer it."""
        with self._changed:
            self._changed.wait_for(lambda: held.answer is not Answer.WAIT)
            return held.answer

    def wait_held(self, count: int, child: Child | None = None) -> list[Held]:
        """Until ``count`` requests are held; fails at once if ``child`` (the client) exits
        first, and after :data:`PATIENCE_SECONDS` otherwise."""
        deadline = time.monotonic() + PATIENCE_SECONDS
        with self._changed:
            while len(self.held) < count:
                if child is not None and child.poll() is not None:
                    raise AssertionError(
                        f"the sender exited ({child.returncode}) before {count} requests were "
                        f"held ({len(self.held)} were)"
                    )
                assert time.monotonic() < deadline, f"{count} requests never arrived"
                # Woken by each arrival; the timeout only lets the child's exit be noticed.
                self._changed.wait(timeout=0.2)
            return list(self.held)

    def answer(self, number: int) -> Held:
        """Answer the ``number``-th request now (it must be held), with ``Connection: close``:
        its ``read`` is set once the client has read the answer and hung up."""
        with self._changed:
            [held] = [h for h in self.held if h.number == number]
            assert self.taken and held.answer is Answer.WAIT
            held.answer = Answer.WATCHED
            self._changed.notify_all()
            return held

    def wait_read(self, held: Held) -> None:
        assert held.read.wait(PATIENCE_SECONDS), f"request {held.number}'s answer was never read"

    def release(self) -> None:
        """Let every held request go (answered if taken, else dropped), and the ones still to
        come go through the same way."""
        with self._changed:
            self._release_all()

    def _release_all(self) -> None:
        self.released = True
        for held in self.held:
            if held.answer is Answer.WAIT:
                held.answer = self._let_go()
        self._changed.notify_all()

    def _let_go(self) -> Answer:
        return Answer.ANSWER if self.taken else Answer.DROP
