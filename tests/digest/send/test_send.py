"""Sending through the ledger: crash and resume, ambiguity policy, and a real SMTP server."""

from __future__ import annotations

import re
import socket
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import load_config
from digest.errors import ProviderDown
from digest.scaffold import scaffold
from digest.send import ledger, reporting
from digest.send.batch import OutgoingBatch
from subscribers.importer import parse_csv, topic_resolver
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock


class Crash(BaseException):
    """Stands for the process dying mid-send: nothing after it runs."""


class FlakyTransport:
    name = "flaky"
    concurrent = False

    def __init__(self, crash_on_call: int | None) -> None:
        self.calls = 0
        self.crash_on_call = crash_on_call
        self.delivered: list[str] = []
        self.in_flight = 0

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        self.calls += 1
        if self.calls == self.crash_on_call:
            self.in_flight = len(batch.recipients)
            raise Crash
        self.delivered.extend(r.email for r in batch.recipients)
        return {}

    def send_message(self, message: EmailMessage) -> None:
        raise AssertionError("an issue's send hands over batches, never single messages")


def project_with(
    tmp_path: Path, clock: FixedClock, sending: str = "", tables: str = "", top: str = ""
) -> Project:
    config_path = scaffold(tmp_path / "site")
    text = top + config_path.read_text(encoding="utf-8")
    for key in ("transport", "batch_size", "outbox_dir"):
        if f"{key} =" in sending:  # the test's value replaces the example's
            text = re.sub(rf"(?m)^{key} = [^\n]*\n", "", text, count=1)
    text = text.replace("[sending]\n", f"[sending]\n{sending}")
    config_path.write_text(text + tables, encoding="utf-8")
    project = Project.open(
        load_config(
            config_path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
        ),
        clock=clock,
    )
    resolve = topic_resolver((t.slug, t.name) for t in project.topics())
    with (tmp_path / "site" / "subscribers.csv").open(encoding="utf-8", newline="") as handle:
        parsed = parse_csv(handle, resolve)
    with project.engine.begin() as conn:
        SubscriberStore(conn).upsert(parsed.rows, clock(), "test")
    gathering.gather_sources(project)
    return project


@pytest.mark.parametrize(("policy_name", "resent"), [("skip", False), ("resend", True)])
def test_a_crash_mid_send_resumes_and_in_flight_rows_follow_the_policy(
    tmp_path: Path, clock: FixedClock, policy_name: str, resent: bool
) -> None:
    project = project_with(tmp_path, clock, "batch_size = 4\n")
    crashing = FlakyTransport(crash_on_call=3)
    with pytest.raises(Crash):
        sending.send(project, transport=crashing)
    assert len(crashing.delivered) > 0 and 0 < crashing.in_flight <= 4
    lost = crashing.in_flight

    finishing = FlakyTransport(crash_on_call=None)
    planned, report = sending.send(project, transport=finishing, ambiguous_policy=policy_name)  # type: ignore[arg-type]
    assert planned is not None and report is not None
    assert report.ambiguous == lost and report.finished
    everyone = set(crashing.delivered) | set(finishing.delivered)
    assert len(everyone) == 29 - (0 if resent else lost)
    assert not set(crashing.delivered) & set(finishing.delivered)
    with project.engine.connect() as conn:
        counts = reporting.counts(conn, report.issue_id)
    expected = (
        {ledger.SUBMITTED: 29} if resent else {ledger.SUBMITTED: 29 - lost, ledger.AMBIGUOUS: lost}
    )
    assert counts == expected

    third = FlakyTransport(crash_on_call=None)
    assert sending.send(project, transport=third) == (None, None)
    assert third.calls == 0


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@contextmanager
def smtp_server_for(inbox: Inbox) -> Iterator[int]:
    """A real SMTP server (aiosmtpd) on a free loopback port, handing messages to ``inbox``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    with smtp_server_for(inbox) as port:
        yield port, inbox


def test_smtp_transport_delivers_each_reader_once_to_a_real_server(
    tmp_path: Path, clock: FixedClock, smtp_server: tuple[int, Inbox]
) -> None:
    port, inbox = smtp_server
    project = project_with(
        tmp_path,
        clock,
        sending='batch_size = 10\ntransport = "smtp"\n',
        tables=f'\n[sending.smtp]\nhost = "127.0.0.1"\nport = {port}\n',
    )
    _, report = sending.send(project)
    assert report is not None and report.submitted == 29 and report.finished
    recipients = [rcpt for _, rcpts, _ in inbox.messages for rcpt in rcpts]
    assert len(recipients) == len(set(recipients)) == 29
    sender, _, first = inbox.messages[0]
    assert sender == "digest@northwind.example"
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first.get_body(("html",)) is not None and first.get_body(("plain",)) is not None


class DroppingInbox(Inbox):
    """Accepts messages but hangs up after every third one, as servers with limits do."""

    greetings = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.greetings += 1  # once per connection
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if len(self.messages) % 3 == 0:
            session.loop.call_soon(server.transport.close)
        return answer


def test_smtp_reconnects_when_the_server_drops_the_connection(
    tmp_path: Path, clock: FixedClock
) -> None:
    inbox = DroppingInbox()
    with smtp_server_for(inbox) as port:
        project = project_with(
            tmp_path,
            clock,
            sending='batch_size = 10\ntransport = "smtp"\n',
            tables=f'\n[sending.smtp]\nhost = "127.0.0.1"\nport = {port}\n',
        )
        _, report = sending.send(project)
    assert report is not None and report.submitted == 29 and report.failed == 0
    recipients = [rcpt for _, rcpts, _ in inbox.messages for rcpt in rcpts]
    assert len(recipients) == len(set(recipients)) == 29
    assert inbox.greetings >= 29 // 3  # it really reconnected


class FailingInbox(Inbox):
    """Takes ``accepted`` messages, then, until ``mended``, refuses every recipient for now
    (421 before DATA: the message never left). With ``unanswered``, the first message after
    the ``accepted`` is taken whole and the server hangs up before answering (the client
    cannot know)."""

    def __init__(self, accepted: int, unanswered: bool = False) -> None:
        super().__init__()
        self.accepted = accepted
        self.unanswered = unanswered
        self.mended = False

    def failing(self) -> bool:
        return not self.mended and len(self.messages) >= self.accepted + self.unanswered

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.failing():
            return "421 4.3.2 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if self.unanswered and len(self.messages) == self.accepted + 1:
            server.transport.close()  # before the answer is written
        return answer


def smtp_project(tmp_path: Path, clock: FixedClock, port: int) -> Project:
    return project_with(
        tmp_path,
        clock,
        sending='batch_size = 10\ntransport = "smtp"\n',
        tables=f'\n[sending.smtp]\nhost = "127.0.0.1"\nport = {port}\ntimeout_seconds = 60\n',
    )


def delivered(inbox: Inbox) -> Counter[str]:
    return Counter(rcpt for _, rcpts, _ in inbox.messages for rcpt in rcpts)


def test_an_smtp_server_that_stops_midway_through_a_batch_costs_nobody_a_second_copy(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The batch's messages the server took are submitted, the one it refused for now and the
    rest stay pending: the next run sends each of those once, and nobody gets two."""
    inbox = FailingInbox(accepted=13)
    with smtp_server_for(inbox) as port:
        project = smtp_project(tmp_path, clock, port)
        with pytest.raises(ProviderDown, match="421"):
            sending.send(project)
        assert ledger_counts(project) == {ledger.SUBMITTED: 13, ledger.PENDING: 16}
        inbox.mended = True
        _, report = sending.send(project)
    assert report is not None and report.finished and report.submitted == 16
    assert ledger_counts(project) == {ledger.SUBMITTED: 29}
    counts = delivered(inbox)
    assert len(counts) == 29 and set(counts.values()) == {1}


def test_an_smtp_message_sent_whole_without_an_answer_is_ambiguous_alone(
    tmp_path: Path, clock: FixedClock
) -> None:
    inbox = FailingInbox(accepted=13, unanswered=True)
    with smtp_server_for(inbox) as port:
        project = smtp_project(tmp_path, clock, port)
        with pytest.raises(ProviderDown):
            sending.send(project)
        assert ledger_counts(project) == {
            ledger.SUBMITTED: 13,
            ledger.AMBIGUOUS: 1,
            ledger.PENDING: 15,
        }
        unknown = inbox.messages[-1][1][0]  # the server has it, the client does not know
        inbox.mended = True
        _, report = sending.send(project)
        assert report is not None and report.finished and report.ambiguous == 1
        _, again = sending.resend_ambiguous(project, None, planned_number(project))
    assert again.submitted == 1 and ledger_counts(project) == {ledger.SUBMITTED: 29}
    counts = delivered(inbox)
    # The one message sent whole without an answer reached its reader twice, as the policy
    # warns; nobody else did.
    assert len(counts) == 29 and counts[unknown] == 2 and sum(counts.values()) == 30


def ledger_counts(project: Project) -> Counter[str]:
    issue = issue_cases.latest(project)
    assert issue is not None and issue.id is not None
    with project.engine.connect() as conn:
        return reporting.counts(conn, issue.id)


def planned_number(project: Project) -> int:
    issue = issue_cases.latest(project)
    assert issue is not None
    return issue.number
