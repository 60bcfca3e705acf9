"""Shared fixtures: the example site in a temporary folder, a fixed clock, databases."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, text

from digest import db
from digest.app.wiring import Project
from digest.config import Config, load_config
from digest.scaffold import scaffold
from digest.web import create_app
from digest.web.head_limit import HeadLimitedProtocol
from subscribers.models import Status
from subscribers.store import SubscriberStore

DATA = Path(__file__).parent / "data"
CHROMIUM = Path("/usr/bin/chromium")

# Monday 23 November 2026, 08:00 in Berlin: after every post of the example site.
DEMO_NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(DEMO_NOW)


@pytest.fixture
def environ() -> dict[str, str]:
    return {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}


@pytest.fixture
def example_config(tmp_path: Path, environ: dict[str, str]) -> Config:
    return load_config(scaffold(tmp_path / "site"), environ)


@pytest.fixture
def example_project(example_config: Config, clock: FixedClock) -> Project:
    return Project.open(example_config, clock=clock)


@pytest.fixture
def corpus() -> Path:
    """shared/corpus, named by DIGEST_CORPUS_DIR (see its README); skip when absent."""
    folder = os.environ.get("DIGEST_CORPUS_DIR")
    if not folder:
        pytest.skip("DIGEST_CORPUS_DIR is not set: corpus tests skipped")
    path = Path(folder).resolve()
    if not path.is_dir():
        pytest.skip(f"DIGEST_CORPUS_DIR={folder} is not a folder: corpus tests skipped")
    return path


SCREENSHOTS = Path(__file__).parents[1] / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium driven by Playwright; skips when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    SCREENSHOTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def _postgres_url() -> str | None:
    return os.environ.get("DIGEST_TEST_DATABASE_URL") or None


def empty_database(kind: str, folder: Path) -> Engine:
    """A migrated, empty database: ``kind`` "sqlite" is a file in ``folder``, "postgresql" the
    database DIGEST_TEST_DATABASE_URL names, emptied (the test skips when it is not set)."""
    if kind == "sqlite":
        eng = db.make_engine(f"sqlite:///{folder / 'test.sqlite3'}")
    else:
        url = _postgres_url()
        if url is None:
            pytest.skip("DIGEST_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
        eng = db.make_engine(url)
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    db.upgrade(eng)
    return eng


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: SQLite, and PostgreSQL when DIGEST_TEST_DATABASE_URL is set."""
    eng = empty_database(request.param, tmp_path)
    yield eng
    eng.dispose()


def copy_data(name: str, target: Path) -> Path:
    destination = target / name
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / name, destination)
    return destination


# A live server: the real app under uvicorn on 127.0.0.1 --------------------------------


@dataclass
class Live:
    base: str
    project: Project
    clock: FixedClock
    outbox: Path
    app: Any

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=10)

    def add(self, email: str, topics: set[str], status: Status = Status.ACTIVE) -> int:
        with self.project.engine.begin() as conn:
            return (
                SubscriberStore(conn)
                .add(email, "", frozenset(topics), self.clock(), "test", status)
                .id
            )

    def settle(self) -> None:
        """Wait until the readers' emails queued so far are sent (the app sends them after
        answering)."""
        assert self.app.state.services.background.wait_idle(timeout=30)

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
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", http=HeadLimitedProtocol
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # only a failure waits this long
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    yield Live(
        f"http://127.0.0.1:{port}",
        example_project,
        clock,
        example_project.config.outbox_dir / "messages",
        app,
    )
    server.should_exit = True
    thread.join(timeout=10)
