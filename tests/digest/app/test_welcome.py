"""The welcome email: sent once, after the first confirmation, through the project's own
transport (a real SMTP server here, aiosmtpd on loopback), from a template a site may
override; never to someone the first click did not make active."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from digest.app.readers import Readers
from digest.app.wiring import Project
from digest.config import Config, load_config
from digest.scaffold import scaffold
from subscribers.models import Status
from subscribers.store import SubscriberStore
from subscribers.tokens import Purpose
from tests.conftest import SCREENSHOTS, FixedClock
from tests.digest.render.test_client_support import unsupported


class RawInbox:
    """Keeps each message exactly as it came over SMTP."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK"


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[int, RawInbox]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    inbox = RawInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def smtp_project(tmp_path: Path, clock: FixedClock, port: int, templates: bool = False) -> Project:
    path = scaffold(tmp_path / "site")
    text = path.read_text(encoding="utf-8").replace('transport = "outbox"', 'transport = "smtp"')
    if templates:
        text = text.replace('# templates = "my-templates"', 'templates = "my-templates"')
    path.write_text(text + f'\n[sending.smtp]\nhost = "127.0.0.1"\nport = {port}\n', "utf-8")
    config = load_config(path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"})
    return Project.open(config, clock=clock)


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(raw: bytes) -> str:
    body = parsed(raw).get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def confirm_token(raw: bytes) -> str:
    found = re.search(r"/confirm/([A-Za-z0-9._-]+)", text_of(raw))
    assert found is not None
    return found[1]


def test_one_welcome_email_after_the_first_click_of_the_confirmation_link(
    tmp_path: Path, clock: FixedClock, smtp_inbox: tuple[int, RawInbox]
) -> None:
    port, inbox = smtp_inbox
    project = smtp_project(tmp_path, clock, port)
    readers = Readers(project, project.mailer())
    readers.subscribe("Ada@example.com", "Ada Lovelace", ["backend", "data"])
    [(rcpts, confirmation)] = inbox.received
    assert rcpts == ["Ada@example.com"]
    token = confirm_token(confirmation)

    preferences = readers.confirm(token)
    again = readers.confirm(token)  # the same link, clicked twice
    assert len(inbox.received) == 2
    rcpts, raw = inbox.received[1]
    assert rcpts == ["Ada@example.com"]
    assert raw.count(b"\r\nSubject: Welcome to ") == 1
    assert b"\r\nTo: Ada Lovelace <Ada@example.com>\r\n" in raw
    assert raw.startswith(b"From: Northwind Engineering <digest@northwind.example>\r\n")
    assert b"\r\nAuto-Submitted: auto-generated\r\n" in raw
    public = b"http://localhost:8000"
    # The token changes by the second (its time stamp); both open the same preferences.
    owner = readers.subscriber_for(Purpose.MANAGE, preferences)[0]
    assert owner == readers.subscriber_for(Purpose.MANAGE, again)[0]
    assert owner.status is Status.ACTIVE and owner.topics == {"backend", "data"}
    # As a digest's: the one-click URL, then the site's mailto with the same token, raw.
    unsubscribe = re.search(
        rb"\r\nList-Unsubscribe: <([^>\r\n]+/unsubscribe/([^>/\r\n]+))>,\r?\n? "
        rb"<mailto:unsubscribe@northwind\.example\?subject=unsubscribe%20([^>\r\n]+)>\r\n",
        raw,
    )
    assert unsubscribe is not None and unsubscribe[1].startswith(public + b"/unsubscribe/")
    assert unsubscribe[2] == unsubscribe[3]
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    message = parsed(raw)
    assert message.get_body(("html",)) is not None
    text = text_of(raw)
    assert text.startswith("Welcome, Ada!")
    assert "Your topics: Backend & Infrastructure, Data Engineering." in text
    # A digest of one schedule has nothing to choose: neither email speaks of it.
    assert "How often" not in text and "How often" not in text_of(inbox.received[0][1])
    assert f"{public.decode()}/preferences/" in text
    assert not any(line.startswith((b"Bcc", b"bcc")) for line in raw.split(b"\r\n"))

    # Leaving and confirming again (a new sign-up) is joining again: welcomed again.
    with project.engine.begin() as conn:
        SubscriberStore(conn).set_status("ada@example.com", Status.UNSUBSCRIBED, clock())
    readers.subscribe("ada@example.com", "Ada Lovelace", ["backend"])
    readers.confirm(confirm_token(inbox.received[2][1]))
    assert [b"Subject: Welcome" in raw for _, raw in inbox.received] == [False, True, False, True]


def test_a_site_overrides_the_welcome_template(
    tmp_path: Path, clock: FixedClock, smtp_inbox: tuple[int, RawInbox]
) -> None:
    port, inbox = smtp_inbox
    project = smtp_project(tmp_path, clock, port, templates=True)
    folder = tmp_path / "site" / "my-templates" / "confirm"
    folder.mkdir(parents=True)
    (folder / "welcome.txt.j2").write_text(
        "Moin {{ first_name }}! {{ digest.name }} kommt montags.\n{{ preferences_url }}\n",
        encoding="utf-8",
    )
    readers = Readers(project, project.mailer())
    readers.subscribe("bo@example.com", "Bo Berg", ["data"])
    readers.confirm(confirm_token(inbox.received[0][1]))
    text = text_of(inbox.received[1][1])
    assert text.startswith(
        "Moin Bo! The Northwind Weekly kommt montags.\r\nhttp://localhost:8000/preferences/"
    )


def shared_mailbag() -> tuple[list[EmailMessage], Callable[[EmailMessage], None]]:
    """A list of the emails sent, and a mailer that many threads may call at once."""
    sent: list[EmailMessage] = []
    lock = threading.Lock()

    def mailer(message: EmailMessage) -> None:
        with lock:
            sent.append(message)

    return sent, mailer


def clicked_at_once(
    readers: Readers, token: str, clicks: int = 4
) -> tuple[list[str], list[BaseException]]:
    """The confirmation link opened by ``clicks`` threads let go together: the preferences
    tokens they were answered with, and what they raised."""
    start = threading.Barrier(clicks)
    answers: list[str] = []
    errors: list[BaseException] = []

    def click() -> None:
        start.wait()
        try:
            answers.append(readers.confirm(token))
        except BaseException as err:  # reported to the caller
            errors.append(err)

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, errors


@pytest.fixture
def project(example_config: Config, clock: FixedClock, engine: Engine) -> Project:
    return Project.open(example_config, clock=clock, engine=engine)


def test_two_clicks_at_the_same_moment_send_one_welcome(project: Project) -> None:
    """Two requests confirming at once (a double click, a link scanner and the reader): one
    welcome, on SQLite and PostgreSQL, whatever the order the threads run in."""
    sent, mailer = shared_mailbag()
    readers = Readers(project, mailer)
    readers.subscribe("cy@example.com", "", ["backend"])
    _, errors = clicked_at_once(readers, confirm_token(bytes(sent[0])))
    assert errors == []
    assert [m["Subject"] for m in sent[1:]] == ["Welcome to The Northwind Weekly"]
    with project.engine.connect() as conn:
        found = SubscriberStore(conn).get("cy@example.com")
    assert found is not None and found.status is Status.ACTIVE


def test_confirmation_and_welcome_say_how_often_and_in_which_zone_when_offered(
    tmp_path: Path, clock: FixedClock, smtp_inbox: tuple[int, RawInbox]
) -> None:
    port, inbox = smtp_inbox
    path = scaffold(tmp_path / "site")
    text = path.read_text(encoding="utf-8").replace('transport = "outbox"', 'transport = "smtp"')
    for line in ("cadences = ", "default_cadence = ", "local_delivery = "):
        text = text.replace(f"# {line}", line)
    path.write_text(text + f'\n[sending.smtp]\nhost = "127.0.0.1"\nport = {port}\n', "utf-8")
    config = load_config(path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"})
    project = Project.open(config, clock=clock)
    readers = Readers(project, project.mailer())
    slug = config.digests[0].slug
    readers.subscribe("di@example.com", "Di", ["data"], {slug: "monthly"}, "Asia/Kathmandu")
    readers.subscribe("ed@example.com", "Ed", ["data"])
    readers.confirm(confirm_token(inbox.received[0][1]))
    readers.confirm(confirm_token(inbox.received[1][1]))
    expected = "How often: monthly, at the digest's hour in your time zone (Asia/Kathmandu)."
    default = "How often: weekly, at the digest's hour in your time zone (Europe/Berlin)."
    # The confirmations (what the reader asked for), then the welcomes (what they got).
    for (_, chosen), (_, given) in zip(inbox.received[0::2], inbox.received[1::2], strict=True):
        assert expected in text_of(chosen) and default in text_of(given)
        html = parsed(chosen).get_body(("html",))
        assert html is not None and "How often: monthly" in str(html.get_content())


def rgb(hex_colour: str) -> str:
    """``#1f2933`` as a browser computes it: ``rgb(31, 41, 51)``."""
    red, green, blue = (int(hex_colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({red}, {green}, {blue})"


def test_the_service_emails_follow_the_readers_colour_scheme(
    project: Project, browser: Any, corpus: Path
) -> None:
    """The confirmation request, the welcome and the preferences link: dark in a dark client,
    as the digest is (light text on the digest's dark panel), light otherwise; and nothing in
    them that caniemail says a target client lacks without a fallback."""
    sent, mailer = shared_mailbag()
    readers = Readers(project, mailer)
    readers.subscribe("dee@example.com", "Dee", ["backend"])
    readers.confirm(confirm_token(bytes(sent[0])))
    readers.send_link("dee@example.com")
    htmls = {}
    for message in sent:
        body = message.get_body(("html",))
        assert body is not None
        htmls[str(message["Subject"]).split(" ")[0]] = str(body.get_content())
    assert sorted(htmls) == ["Confirm", "Welcome", "Your"]
    assert not any("{{" in html or "{%" in html for html in htmls.values())
    assert '">One click and The Northwind Weekly starts.</div>' in htmls["Confirm"]
    colours = (
        "() => [getComputedStyle(document.querySelector('.panel')).backgroundColor,"
        " getComputedStyle(document.querySelector('.panel h1')).color]"
    )
    for name, html in htmls.items():
        for scheme, expected in (
            ("dark", ["rgb(17, 24, 39)", "rgb(229, 231, 235)"]),
            ("light", ["rgb(255, 255, 255)", rgb(project.config.file.theme.text)]),
        ):
            page = browser.new_page(viewport={"width": 375, "height": 700}, color_scheme=scheme)
            page.set_content(html)
            page.screenshot(path=str(SCREENSHOTS / f"service-{name}-{scheme}-375.png"))
            found = page.evaluate(colours)
            page.close()
            assert found == expected, (name, scheme)
    assert unsupported(corpus, htmls.values())[1] == {}
