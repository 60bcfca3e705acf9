"""Fixtures for the web tests: ``live`` (tests/conftest.py) plus an editor and gathered posts."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from digest.app import gathering, issues
from digest.passwords import hash_password
from digest.stores.editors import EditorStore
from tests.conftest import Live


@dataclass
class Peak:
    bytes: int = 0


@contextmanager
def allocation_peak() -> Iterator[Peak]:
    """The peak of what Python allocated in this process while the block ran: the live server
    runs in it, so what a request made it hold is counted."""
    peak = Peak()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        yield peak
        peak.bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


EDITOR_EMAIL = "ed@northwind.example"
EDITOR_PASSWORD = "correct horse battery"


@dataclass
class EditorSite:
    live: Live
    email: str = EDITOR_EMAIL
    password: str = EDITOR_PASSWORD

    def login(self, client: httpx.Client, password: str | None = None) -> httpx.Response:
        page = client.get("/editor/login")
        return client.post(
            "/editor/login",
            data={
                "csrf": csrf_of(page),
                "email": self.email,
                "password": self.password if password is None else password,
                "next": "/editor/",
            },
        )

    def browse(self, page: Any, path: str) -> None:
        """Open ``path`` in a browser ``page`` as the editor: the login page it leads to,
        filled in, and back to ``path``."""
        page.goto(f"{self.live.base}{path}")
        page.wait_for_url("**/editor/login?next=**")
        page.fill("#email", self.email)
        page.fill("#password", self.password)
        page.click("form[action='/editor/login'] button[type=submit]")
        page.wait_for_url(f"{self.live.base}{path}")

    def issue_id(self) -> int:
        planned = issues.plan(self.live.project, "weekly")
        assert planned is not None and planned.issue.id is not None
        return planned.issue.id


@contextmanager
def logged_in(site: EditorSite) -> Iterator[httpx.Client]:
    """An HTTP client with the editor's session."""
    with site.live.client() as client:
        answer = site.login(client)
        assert answer.status_code == 303 and answer.headers["location"] == "/editor/"
        yield client


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


@pytest.fixture
def site(live: Live) -> EditorSite:
    """The example site served live, its feeds gathered, readers in every segment shape, and
    one editor in the database."""
    gathering.gather_sources(live.project)
    for i, topics in enumerate(
        [{"backend"}, {"backend", "data"}, {"frontend"}, {"ai-ml", "security"}, {"data"}]
    ):
        live.add(f"reader{i}@example.com", topics)
    with live.project.engine.begin() as conn:
        EditorStore(conn).add(EDITOR_EMAIL, "Ed", hash_password(EDITOR_PASSWORD), live.clock())
    return EditorSite(live)
