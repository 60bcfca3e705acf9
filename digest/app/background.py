"""Work done after the answer has gone: one thread that runs queued jobs in order.

The readers' emails (a confirmation, a link to one's preferences) are queued here by the web
app instead of being sent while the reader waits. Whether an address is known decides whether
an email is rendered and sent, and that costs milliseconds; done in the request, it told anyone
timing the answer which addresses we know. Queued, every answer costs the same.

A job that fails is logged and the next one runs: a broken address or a transport that is
down must not stop the confirmations behind it. :meth:`Background.close` runs what is queued
before it returns, so a server that shuts down sends what it promised.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class Background:
    """A queue of jobs and the thread that runs them. ``capacity`` bounds the queue: a flood
    of requests (each already rate-limited) is dropped with a warning rather than held in
    memory without end."""

    def __init__(self, name: str, capacity: int = 10_000) -> None:
        self.name = name
        self._jobs: queue.Queue[Job | None] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False (logged) when the queue is full or closed."""
        with self._lock:
            if self._closed:
                log.warning("%s is closed: a job was dropped", self.name)
                return False
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                log.warning("%s is full: a job was dropped", self.name)
                return False
        return True

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                job()
            except Exception:  # one failure must not stop the jobs behind it
                log.exception("a job of %s failed", self.name)
            finally:
                self._jobs.task_done()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued job has run; False if ``timeout`` seconds passed first."""
        done = self._jobs.all_tasks_done
        with done:
            return done.wait_for(lambda: self._jobs.unfinished_tasks == 0, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Take no more jobs, run those queued, and stop the thread; False if it was still
        running after ``timeout`` seconds (None: wait as long as it takes)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)  # after every queued job: they run first
        self._thread.join(timeout)
        return not self._thread.is_alive()
