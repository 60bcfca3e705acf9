"""The second layer: whatever names and addresses are stored (rows older than the checks at
entry, or a way in that forgot them), the bytes that leave (the outbox's ``.eml`` files, what
a real SMTP server receives, SendGrid's payload) carry exactly the headers meant, and a
recipient whose message cannot be built or is refused fails alone, with why."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from digest import db
from digest.app import sending
from digest.app.readers import Readers
from digest.app.wiring import Project
from digest.models import Variant
from digest.send import ledger
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient
from digest.send.message import Envelope
from digest.send.sendgrid import SendGridOptions, build_payload
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock
from tests.digest.send.test_send import project_with
from tests.hostile import (
    ADDRESSES,
    DIGEST_FIELDS,
    NAMES,
    SERVICE_FIELDS,
    assert_nothing_injected,
)

REFUSED_AT_RCPT = "refused-rcpt@example.com"
REFUSED_AT_DATA = "refused-data@example.com"


def add_hostile_readers(project: Project, clock: FixedClock) -> tuple[dict[str, int], set[int]]:
    """Readers with every hostile name (by class), and readers with every hostile address
    (their ids), stored straight into the database as an old row would be."""
    named: dict[str, int] = {}
    unbuildable: set[int] = set()
    with project.engine.begin() as conn:
        store = SubscriberStore(conn)
        for hostile in NAMES:
            address = f"{hostile.kind}@example.com"
            named[address] = store.add(address, hostile.value, frozenset({"backend"}), clock()).id
        for hostile in ADDRESSES:
            added = store.add(hostile.value, "Ann", frozenset({"backend"}), clock())
            unbuildable.add(added.id)
    return named, unbuildable


def outcomes(project: Project, issue_id: int) -> dict[int, tuple[str, str | None]]:
    """subscriber id → (state, error) of each delivery of the issue."""
    d, b = db.deliveries.c, db.send_batches.c
    query = (
        select(d.subscriber_id, ledger.STATE, d.error)
        .select_from(db.deliveries.join(db.send_batches, b.id == d.batch_id))
        .where(d.issue_id == issue_id)
    )
    with project.engine.connect() as conn:
        return {int(row[0]): (str(row[1]), row[2]) for row in conn.execute(query)}


def check_outcomes(
    project: Project,
    issue_id: int,
    unbuildable: set[int],
    refused: frozenset[int] | set[int] = frozenset(),
) -> None:
    found = outcomes(project, issue_id)
    for subscriber_id in unbuildable:
        state, error = found[subscriber_id]
        assert state == ledger.FAILED and error and "cannot build the message" in error
    for subscriber_id in refused:
        state, error = found[subscriber_id]
        assert state == ledger.FAILED and error and error.startswith("550 ")
    others = {s for s in found if s not in unbuildable | refused}
    assert others and all(found[s][0] == ledger.SUBMITTED for s in others)


def check_hostile_named(raw: bytes, named: dict[str, int]) -> str:
    """The digest's headers and nothing else; a reader with a hostile name gets the address
    alone in To, and "there" in the greeting. Returns the To address."""
    message = assert_nothing_injected(raw, DIGEST_FIELDS)
    [to] = message["To"].addresses
    if to.addr_spec in named:
        assert to.display_name == ""
        assert f"To: {to.addr_spec}\r\n".encode() in raw
        plain = message.get_body(("plain",))
        assert plain is not None and "there" in plain.get_content()
    return str(to.addr_spec)


def test_outbox_files_carry_only_the_headers_meant_whatever_is_stored(
    tmp_path: Path, clock: FixedClock
) -> None:
    project = project_with(tmp_path, clock, "batch_size = 7\n")
    named, unbuildable = add_hostile_readers(project, clock)
    _, report = sending.send(project)
    assert report is not None and report.finished
    assert report.failed == len(unbuildable)
    files = sorted(project.config.outbox_dir.rglob("*.eml"))
    assert len(files) == report.submitted
    written = {check_hostile_named(path.read_bytes(), named) for path in files}
    assert set(named) <= written
    check_outcomes(project, report.issue_id, unbuildable)


class RawInbox:
    """An SMTP server's side: the bytes received, and two recipients it refuses (one at RCPT,
    one after DATA, as servers do for a mailbox full or a message they will not take)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == REFUSED_AT_RCPT:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if REFUSED_AT_DATA in envelope.rcpt_tos:
            return "550 5.7.1 message refused"
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@contextmanager
def smtp_server(inbox: RawInbox) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_smtp_data_carries_only_the_headers_meant_and_one_refusal_costs_nobody_else(
    tmp_path: Path, clock: FixedClock
) -> None:
    inbox = RawInbox()
    with smtp_server(inbox) as port:
        project = project_with(
            tmp_path,
            clock,
            sending='batch_size = 7\ntransport = "smtp"\n',
            tables=f'\n[sending.smtp]\nhost = "127.0.0.1"\nport = {port}\n',
        )
        named, unbuildable = add_hostile_readers(project, clock)
        with project.engine.begin() as conn:
            store = SubscriberStore(conn)
            refused = {
                store.add(address, "Ref Used", frozenset({"backend"}), clock()).id
                for address in (REFUSED_AT_RCPT, REFUSED_AT_DATA)
            }
        _, report = sending.send(project)
    assert report is not None and report.finished
    assert report.failed == len(unbuildable) + len(refused)
    assert report.submitted == len(inbox.received)
    for _, recipients, raw in inbox.received:
        assert recipients == [check_hostile_named(raw, named)]
    assert set(named) <= {r for _, rs, _ in inbox.received for r in rs}
    check_outcomes(project, report.issue_id, unbuildable, refused)


@pytest.mark.parametrize("hostile", NAMES, ids=str)
def test_confirmation_and_link_emails_carry_no_stored_hostile_name(
    example_project: Project, hostile: Any
) -> None:
    """Readers.subscribe is what the sign-up form calls once the form is checked; called
    straight, it shows what a name that slipped past the form would do."""
    readers = Readers(example_project, example_project.mailer())
    readers.subscribe("new@example.com", hostile.value, ["backend"])
    with example_project.engine.begin() as conn:
        store = SubscriberStore(conn)
        old = store.add(
            "old@example.com", hostile.value, frozenset({"data"}), readers.project.clock()
        )
    readers.send_link(old.email)
    files = sorted(example_project.config.outbox_dir.rglob("*.eml"))
    assert len(files) == 2
    for path in files:
        raw = path.read_bytes()
        message = assert_nothing_injected(raw, SERVICE_FIELDS)
        [to] = message["To"].addresses
        assert to.display_name == "" and f"To: {to.addr_spec}\r\n".encode() in raw


def _batch(names: list[str], subject: str) -> OutgoingBatch:
    variant = CompiledVariant.of(Variant(frozenset({"backend"}), subject, "<p>h</p>", "t"), "u")
    envelope = Envelope("Digest", "digest@example.com", None, "D <d.example.com>", None)
    recipients = tuple(
        Recipient(i + 1, f"r{i}@example.com", name, "there", "tok") for i, name in enumerate(names)
    )
    return OutgoingBatch(1, "weekly", 1, envelope, variant, recipients, "https://x.example")


def test_sendgrid_payload_gives_no_hostile_name_and_a_one_line_subject() -> None:
    hostile_subject = "Issue\r\nBcc: evil@example.com =?utf-8?q?x=0D=0A?= \u202eend"
    payload = build_payload(
        _batch([h.value for h in NAMES] + ["Ann Lee"], hostile_subject), SendGridOptions()
    )
    tos = [p["to"][0] for p in payload["personalizations"]]
    assert all("name" not in to for to in tos[:-1])
    assert tos[-1] == {"email": f"r{len(NAMES)}@example.com", "name": "Ann Lee"}
    subject = payload["subject"]
    assert "\r" not in subject and "\n" not in subject and "\u202e" not in subject
    assert "=?" not in subject and subject.startswith("Issue Bcc: evil@example.com =\u200b?utf-8")
