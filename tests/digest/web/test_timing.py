"""No enumeration by timing: "subscribe me" and "email me my link" answer in the same time for a
known, an unknown, a suppressed and an invalid address.

The server is `digest serve` in a process of its own, as a reader's browser or an attacker
meets it: in this process, the test's own HTTP client would share the server's interpreter
lock, and the server's email thread would slow the client instead of the answer.

Requests of every kind are interleaved in a random order, so whatever the loaded machine does
meanwhile falls on every kind alike, and compared by their medians, which a few slow requests
do not move. Margin: the medians of one endpoint may differ by at most
``ABSOLUTE + RELATIVE × the fastest``. Measured on this 2-core machine at a load average of
7 to 8 (other test suites running), three runs of 200 requests per kind gave medians of 3 to
12 ms, spread over 0.7 to 1.8 ms (14 to 29 % of the fastest); the sign-up of an invalid
address, whose answer is the form with its error, was the slowest by about 1 ms. Before the
email work left the request, a known address took 12 ms where a suppressed one took 4.5 and
an invalid one 2.6: a spread of 4 to 5 times the margin chosen here.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from digest.app.wiring import Project
from digest.config import load_config
from digest.scaffold import scaffold
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import free_port
from tests.digest.web.conftest import csrf_of

REQUESTS = 200
"""Per endpoint and kind of address."""
WARM_UP = 10
ABSOLUTE = 0.002
RELATIVE = 0.35
KINDS = ("known", "unknown", "suppressed", "invalid")


@dataclass
class Apart:
    base: str
    outbox: Path
    process: subprocess.Popen[bytes]

    def wait_for_mails(self, count: int) -> None:
        """Until the server's email thread has worked through its queue (slow on a loaded
        machine: hundreds of emails were queued faster than they are sent)."""
        deadline = time.monotonic() + 600
        while len(list(self.outbox.glob("*.eml"))) < count and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: uvicorn shuts down gracefully."""
        self.process.terminate()
        self.process.wait(timeout=180)


@pytest.fixture
def apart(tmp_path: Path, environ: dict[str, str]) -> Iterator[Apart]:
    """The example site served by `digest serve` in its own process, with limits that let one
    client ask thousands of times, and known and bounced readers for every request."""
    path = scaffold(tmp_path / "site")
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^subscribe_limit = \d+", "subscribe_limit = 100000", text)
    text = re.sub(r"(?m)^address_limit = \d+", "address_limit = 100000", text)
    path.write_text(text, encoding="utf-8")
    project = Project.open(load_config(path, environ))
    with project.engine.begin() as conn:
        store = SubscriberStore(conn)
        now = project.clock()
        for i in range(REQUESTS + WARM_UP):
            store.add(f"known{i}@example.com", "", frozenset({"backend"}), now, "t")
            store.add(f"gone{i}@example.com", "", frozenset({"data"}), now, "t", Status.BOUNCED)
    project.engine.dispose()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--config", str(path), "--port", str(port)],
        env={**os.environ, **environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    served = Apart(f"http://127.0.0.1:{port}", project.config.outbox_dir / "messages", process)
    try:
        wait_until_up(served.base)
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_until_up(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/subscribe", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("digest serve did not start")


def address(kind: str, i: int) -> str:
    return {
        "known": f"known{i}@example.com",
        "unknown": f"new{i}@example.com",
        "suppressed": f"gone{i}@example.com",
        "invalid": f"bad{i}@@example",
    }[kind]


def ask(client: httpx.Client, csrf: str, endpoint: str, email: str) -> tuple[int, float]:
    if endpoint == "subscribe":
        data = {"csrf": csrf, "email": email, "name": "Robin", "topics": ["backend"]}
        path = "/subscribe"
    else:
        data, path = {"csrf": csrf, "email": email}, "/preferences"
    start = time.perf_counter()
    answer = client.post(path, data=data)
    return answer.status_code, time.perf_counter() - start


def test_known_unknown_suppressed_and_invalid_addresses_answer_alike(apart: Apart) -> None:
    with httpx.Client(base_url=apart.base, timeout=30) as client:
        csrf = csrf_of(client.get("/subscribe"))
        for i in range(WARM_UP):  # templates compiled, connections open
            for endpoint in ("subscribe", "link"):
                for kind in KINDS:
                    ask(client, csrf, endpoint, address(kind, REQUESTS + i))
        plan = [(e, k, i) for e in ("subscribe", "link") for k in KINDS for i in range(REQUESTS)]
        random.shuffle(plan)
        took: dict[tuple[str, str], list[float]] = {}
        statuses: dict[tuple[str, str], set[int]] = {}
        for endpoint, kind, i in plan:
            status, seconds = ask(client, csrf, endpoint, address(kind, i))
            took.setdefault((endpoint, kind), []).append(seconds)
            statuses.setdefault((endpoint, kind), set()).add(status)
    expected = 3 * (REQUESTS + WARM_UP)  # below
    apart.wait_for_mails(expected)
    apart.stop()

    for endpoint, answer in (("subscribe", 303), ("link", 200)):
        assert {statuses[endpoint, k].pop() for k in KINDS[:3]} == {answer}
        assert statuses[endpoint, "invalid"] == {400}
        medians = {k: statistics.median(took[endpoint, k]) for k in KINDS}
        fastest, slowest = min(medians.values()), max(medians.values())
        shown = ", ".join(f"{k} {m * 1000:.2f} ms" for k, m in medians.items())
        print(f"{endpoint}: {shown}")
        assert slowest - fastest <= ABSOLUTE + RELATIVE * fastest, f"{endpoint}: {shown}"

    # The email work happened, after the answers: every known address got its confirmation
    # and its link, every new one its confirmation, no other address anything.
    sent = [p.name.split("-")[0] for p in apart.outbox.glob("*.eml")]
    assert len(sent) == expected
    assert not [a for a in sent if a.startswith(("gone", "bad"))]
