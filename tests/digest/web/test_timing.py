"""No enumeration by timing: "subscribe me" and "email me my link" answer in the same time for a
known, an unknown, a suppressed and an invalid address.

The server is `digest serve` in a process of its own, as a reader's browser or an attacker
meets it: in this process, the test's own HTTP client would share the server's interpreter
lock, and the server's email thread would slow the client instead of the answer.

Requests go in rounds, one of each endpoint and kind per round in a random order, so whatever
the loaded machine does meanwhile falls on every kind alike. Two comparisons, each per
endpoint, each a spread (slowest kind less fastest) against ``absolute + relative × the median
of all its requests``:

* the kinds' medians: margin 3 ms + 35 %;
* the kinds' medians within rounds (each time less the median of its round, so the load, which
  changes from round to round, cancels; finer, so a tighter margin): 1 ms + 20 %.

Measured on this 2-core machine with other test suites running: ten runs of 200 rounds at
load averages of 7 to 11 gave medians of 4 to 19 ms, spreads of 0.4 to 3.8 ms, and within
rounds of 0.06 to 2.3 ms, the largest for the sign-up of an invalid address, whose answer is
the form with its error (0.5 to 1.6 ms slower within rounds); the known, unknown and
suppressed addresses stayed within 0.8 ms of each other. Runs at load averages of 18 to 22
spread the medians by 1.1 to 2.4 ms. Before the email work left the request, the sign-up of
a known address took 18 ms, an unknown one 24, a suppressed one 8.6 and an invalid one 5.7
(12, 14, 4.5 and 2.6 on a quieter machine): a spread of twice the margins or more.
"""

from __future__ import annotations

import itertools
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
MARGIN = (0.003, 0.35)
"""Of the kinds' medians: seconds, and a share of the median of all."""
MARGIN_WITHIN_ROUNDS = (0.001, 0.20)
KINDS = ("known", "unknown", "suppressed", "invalid")
ENDPOINTS = ("subscribe", "link")
ANSWERS = {"subscribe": 303, "link": 200}


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


Timings = dict[tuple[str, str], list[float]]
"""(endpoint, kind) → seconds, one per round."""


def measure(apart: Apart) -> Timings:
    """Rounds of one request of each endpoint and kind, in a random order each round."""
    took: Timings = {}
    with httpx.Client(base_url=apart.base, timeout=30) as client:
        csrf = csrf_of(client.get("/subscribe"))
        for i in range(WARM_UP):  # templates compiled, the connection open
            for endpoint, kind in itertools.product(ENDPOINTS, KINDS):
                ask(client, csrf, endpoint, address(kind, REQUESTS + i))
        for i in range(REQUESTS):
            turns = list(itertools.product(ENDPOINTS, KINDS))
            random.shuffle(turns)
            for endpoint, kind in turns:
                status, seconds = ask(client, csrf, endpoint, address(kind, i))
                assert status == ANSWERS[endpoint] if kind != "invalid" else status == 400
                took.setdefault((endpoint, kind), []).append(seconds)
    return took


def spreads(took: Timings, endpoint: str) -> tuple[float, float, float, str]:
    """The spread of the kinds' medians; the spread of their medians within rounds (each
    time less the median of its round: the load, which changes from round to round, cancels);
    the median of all; and the figures in words."""
    medians = {k: statistics.median(took[endpoint, k]) for k in KINDS}
    rounds = range(len(took[endpoint, KINDS[0]]))
    centres = [statistics.median(took[endpoint, k][r] for k in KINDS) for r in rounds]
    paired = {
        k: statistics.median(took[endpoint, k][r] - centres[r] for r in rounds) for k in KINDS
    }
    overall = statistics.median(t for k in KINDS for t in took[endpoint, k])
    shown = ", ".join(f"{k} {medians[k] * 1000:.2f} ms ({paired[k] * 1000:+.2f})" for k in KINDS)
    return (
        max(medians.values()) - min(medians.values()),
        max(paired.values()) - min(paired.values()),
        overall,
        f"{endpoint}: {shown}",
    )


def test_known_unknown_suppressed_and_invalid_addresses_answer_alike(apart: Apart) -> None:
    took = measure(apart)
    expected = 3 * (REQUESTS + WARM_UP)  # below
    apart.wait_for_mails(expected)
    apart.stop()

    for endpoint in ENDPOINTS:
        spread, paired, overall, shown = spreads(took, endpoint)
        print(f"{shown}; spread {spread * 1000:.2f} ms, within rounds {paired * 1000:.2f} ms")
        assert spread <= MARGIN[0] + MARGIN[1] * overall, shown
        assert paired <= MARGIN_WITHIN_ROUNDS[0] + MARGIN_WITHIN_ROUNDS[1] * overall, shown

    # The email work happened, after the answers: every known address got its confirmation
    # and its link, every new one its confirmation, no other address anything.
    sent = [p.name.split("-")[0] for p in apart.outbox.glob("*.eml")]
    assert len(sent) == expected
    assert not [a for a in sent if a.startswith(("gone", "bad"))]
