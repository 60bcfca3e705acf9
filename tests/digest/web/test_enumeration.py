"""The readers' email requests over real HTTP: the same answer for every address whatever the
name, emails to one address limited whoever asks, and queued emails sent before the server
stops. (The timing of the answers: test_timing.py.)"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from digest.app.wiring import Project
from subscribers.models import Status
from tests.conftest import Live
from tests.digest.web.conftest import csrf_of
from tests.digest.web.test_editor_routes import served

HOSTILE_NAMES = [
    "Robin\r\nBcc: evil@example.com",
    "Robin\nBcc: evil@example.com",
    "=?utf-8?b?Um9iaW4NCkJjYzogZXZpbEBleGFtcGxlLmNvbQ==?=",
    '"Evil" <evil@example.com>, Robin',
    "Robin\x00",
    "\u202enibor",
    "R" * 5000,
]
CSRF_VALUE = re.compile(r'value="[^"]*"')


def from_reader(live: Live, ip: str) -> httpx.Client:
    """A client whose address, per the trusted proxy's X-Forwarded-For, is ``ip``."""
    return httpx.Client(base_url=live.base, headers={"X-Forwarded-For": ip}, timeout=10)


def sign_up(client: httpx.Client, email: str, name: str = "Robin") -> httpx.Response:
    field = csrf_of(client.get("/subscribe"))
    data = {"csrf": field, "email": email, "name": name, "topics": ["backend"]}
    return client.post("/subscribe", data=data)


def ask_for_link(client: httpx.Client, email: str) -> httpx.Response:
    field = csrf_of(client.get("/preferences"))
    return client.post("/preferences", data={"csrf": field, "email": email})


def mails_to(live: Live) -> Counter[str]:
    live.settle()
    return Counter(p.name.split("-")[0] for p in live.outbox.glob("*.eml"))


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_a_hostile_name_gets_the_same_answer_for_every_address(live: Live, name: str) -> None:
    live.add("active@example.com", {"data"})
    live.add("bounced@example.com", {"data"}, Status.BOUNCED)
    live.add("complained@example.com", {"data"}, Status.COMPLAINED)
    addresses = ("new@example.com", "active@example.com", "bounced@example.com")
    with live.client() as client:
        answers = [sign_up(client, a, name) for a in (*addresses, "complained@example.com")]
    shapes = {
        (a.status_code, a.headers.get("location"), CSRF_VALUE.sub("", a.text.replace(e, "")))
        for a, e in zip(answers, (*addresses, "complained@example.com"), strict=True)
    }
    assert len(shapes) == 1, shapes
    assert next(iter(shapes))[0] in (303, 400)  # 400: the form refuses the name for everyone
    # What such a name does to the email's headers is the message builder's to prevent (its
    # own tests); here, only that the email is tried after the answer, whatever becomes of it.
    assert live.app.state.services.background.wait_idle(timeout=30)


def test_emails_to_one_address_are_limited_whoever_asks(live: Live) -> None:
    """Twelve clients ask for one reader's link: three emails go (``address_limit``), and
    the twelve answers are the same."""
    live.add("active@example.com", {"data"})
    answers = []
    for i in range(12):
        with from_reader(live, f"203.0.113.{i + 1}") as client:
            answers.append(ask_for_link(client, "active@example.com"))
    assert {a.status_code for a in answers} == {200}
    assert len({CSRF_VALUE.sub("", a.text) for a in answers}) == 1
    assert mails_to(live) == {"active@example.com": 3}

    for i in range(12):  # sign-ups share the address's budget: nothing more goes out
        with from_reader(live, f"198.51.100.{i + 1}") as client:
            assert sign_up(client, "active@example.com").status_code == 303
    assert mails_to(live) == {"active@example.com": 3}

    live.clock.now += timedelta(minutes=11)  # [web] subscribe_window_seconds later
    with from_reader(live, "192.0.2.1") as client:
        assert ask_for_link(client, "active@example.com").status_code == 200
    assert mails_to(live) == {"active@example.com": 4}


def test_an_unknown_address_over_its_limit_gets_the_same_answer(live: Live) -> None:
    answers = []
    for i in range(5):
        with from_reader(live, f"203.0.113.{i + 1}") as client:
            answers.append(sign_up(client, "stranger@example.com"))
    assert {(a.status_code, a.headers["location"]) for a in answers} == {
        (303, "/subscribe/check-your-email")
    }
    assert mails_to(live) == {"stranger@example.com": 3}


def test_queued_emails_go_out_before_the_server_stops(example_project: Project) -> None:
    """The emails are sent after the answers; stopping the server waits for them."""
    release = threading.Event()
    send = example_project.mailer()

    def held_mailer(message: EmailMessage) -> None:
        release.wait(timeout=30)  # nothing is sent until the server is stopping
        send(message)

    outbox = example_project.config.outbox_dir / "messages"
    with served(example_project, held_mailer) as base, httpx.Client(base_url=base) as client:
        for i in range(3):
            answer = sign_up(client, f"reader{i}@example.com")
            assert answer.status_code == 303
        assert sent_to(outbox) == []  # answered; the emails wait in the queue
        stopping = threading.Thread(target=release_once_closed, args=(base, release))
        stopping.start()
    stopping.join()
    assert sent_to(outbox) == [f"reader{i}@example.com" for i in range(3)]


def release_once_closed(base: str, release: threading.Event) -> None:
    """Let the mailer go once the server has stopped listening: it is shutting down."""
    parts = urlsplit(base)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((parts.hostname or "", parts.port or 80), timeout=1).close()
        except OSError:
            break
        time.sleep(0.05)
    release.set()


def sent_to(outbox: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in outbox.glob("*.eml"))
