"""A live server: the real app under uvicorn on 127.0.0.1, with the example site's project."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from digest.pipeline import Project
from digest.web import create_app
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock


@dataclass
class Live:
    base: str
    project: Project
    clock: FixedClock
    outbox: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=10)

    def add(self, email: str, topics: set[str], status: Status = Status.ACTIVE) -> int:
        with self.project.engine.begin() as conn:
            return (
                SubscriberStore(conn)
                .add(email, "", frozenset(topics), self.clock(), "test", status)
                .id
            )

    def subscriber(self, email: str):  # type: ignore[no-untyped-def]
        with self.project.engine.connect() as conn:
            return SubscriberStore(conn).get(email)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live(example_project: Project, clock: FixedClock) -> Iterator[Live]:
    app = create_app(example_project, example_project.mailer())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield Live(
        f"http://127.0.0.1:{port}",
        example_project,
        clock,
        example_project.config.outbox_dir / "confirmations",
    )
    server.should_exit = True
    thread.join(timeout=10)
