"""Bounces of SMTP sends, end to end on real servers: the digest goes out over SMTP (aiosmtpd)
from each delivery's signed return path; DSNs and ARF reports about those deliveries land in a
real IMAP mailbox (a private Dovecot); `digest bounces fetch` suppresses exactly the addresses
whose delivery a report names with a valid token, with the webhook's rules, once."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from digest import db
from digest.app import bounces, gathering, sending
from digest.app.wiring import Project
from digest.bounces import PROCESSED
from digest.cli import app
from digest.config import IMAP_PASSWORD_ENV, load_config
from digest.errors import ConfigError, DigestError, SecretMissing
from digest.events import issue_counts
from digest.scaffold import scaffold
from digest.verp import HEADER, return_path
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock
from tests.digest.send.test_send import Inbox, smtp_server_for
from tests.digest.test_bounces import BOUNCE_ADDRESS, sample
from tests.dovecot import Imap, dovecot

SECRET = "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"
READERS = {
    "ann": ("ann.reader@example.com", {"backend"}),
    "bo": ("bo.reader@example.com", {"frontend"}),
    "cy": ("cy.reader@example.com", {"data"}),
    "dee": ("dee.victim@example.com", {"backend"}),
    "eve": ("eve.attacker@example.com", {"backend"}),
}

pytestmark = pytest.mark.skipif(
    not Path("/usr/sbin/dovecot").exists(), reason="dovecot-imapd is not installed"
)


@pytest.fixture(scope="module")
def imap() -> Iterator[Imap]:
    with dovecot() as server:
        yield server


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    with smtp_server_for(inbox) as port:
        yield port, inbox


def configure(folder: Path, smtp_port: int, imap: Imap, bounces_table: str | None = None) -> Path:
    path = scaffold(folder / "site")
    text = path.read_text(encoding="utf-8").replace('transport = "outbox"', 'transport = "smtp"')
    table = bounces_table or (
        f'address = "{BOUNCE_ADDRESS}"\nimap_host = "{imap.host}"\nimap_port = {imap.port}\n'
        f'imap_user = "{imap.user}"\nimap_tls = "none"\n'
    )
    path.write_text(
        text + f'\n[sending.smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n\n[bounces]\n{table}',
        encoding="utf-8",
    )
    return path


def environ(imap: Imap) -> dict[str, str]:
    return {"DIGEST_SECRET_KEY": SECRET, IMAP_PASSWORD_ENV: imap.password}


def _empty(imap: Imap) -> None:
    with imap.connect() as conn:
        _, count = conn.select("INBOX")
        if count[0] != b"0":
            conn.store("1:*", "+FLAGS", "(\\Deleted)")
            conn.expunge()


def _sent(project: Project, inbox: Inbox) -> dict[str, tuple[str, EmailMessage]]:
    """Send the issue over SMTP; each reader's (envelope sender, message) by nickname."""
    gathering.gather_sources(project)
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        for email, topics in READERS.values():
            store.add(email, "", frozenset(topics), project.clock(), "test")
    _, report = sending.send(project)
    assert report is not None and report.submitted == len(READERS)
    by_address = {rcpts[0]: (sender, message) for sender, rcpts, message in inbox.messages}
    return {nick: by_address[email] for nick, (email, _) in READERS.items()}


def _status(project: Project, nick: str) -> Status:
    with project.reading() as conn:
        found = SubscriberStore(conn).get(READERS[nick][0])
    assert found is not None
    return found.status


def test_imap_bounces_suppress_the_right_address_and_never_another(
    tmp_path: Path, clock: FixedClock, engine: Engine, imap: Imap, smtp: tuple[int, Inbox]
) -> None:
    _empty(imap)
    port, inbox = smtp
    config = load_config(configure(tmp_path, port, imap), environ(imap))
    project = Project.open(config, clock=clock, engine=engine)
    sent = _sent(project, inbox)
    tokens = project.bounce_tokens()
    with project.reading() as conn:
        ids = {n: SubscriberStore(conn).get(e).id for n, (e, _) in READERS.items()}  # type: ignore[union-attr]
    for nick, (sender, message) in sent.items():
        token = message[HEADER]
        assert tokens.read(token)[1] == ids[nick]  # type: ignore[index]
        assert sender == return_path(BOUNCE_ADDRESS, token)  # the envelope's return path

    def about(nick: str) -> list[str]:
        return [sent[nick][1][HEADER]]

    ann, bo, cy, dee = (READERS[n][0] for n in ("ann", "bo", "cy", "dee"))
    forged = f"{about('dee')[0].split('-')[0]}-{ids['dee']}-{'a' * 16}"
    messages = [
        sample("dsn_permanent.eml", ann, about("ann")),  # Ann's address is gone
        sample("dsn_temporary.eml", bo, about("bo")),  # Bo's mailbox is full for now
        sample("arf_complaint.eml", cy, about("cy")),  # Cy marked it as spam
        sample("dsn_permanent.eml", dee, [forged]),  # a forged token for Dee
        sample("dsn_permanent.eml", dee),  # a bounce naming Dee with no token at all
        sample("dsn_permanent.eml", dee, about("eve")),  # Eve's own token, naming Dee
        sample("dsn_permanent.eml", dee, about("eve") + about("dee")),  # two deliveries
        sample("autoreply.eml", ann, about("ann")),  # an out-of-office reply
    ]
    for raw in messages:
        imap.append(raw)

    report = bounces.fetch_configured(project)
    assert report.read == len(messages)
    assert report.outcomes == {
        "bounce": 2,
        "deferred": 1,
        "spamreport": 1,
        "no token": 3,
        "not a report": 1,
    }
    assert report.suppressed == 3
    assert _status(project, "ann") is Status.BOUNCED
    assert _status(project, "bo") is Status.ACTIVE
    assert _status(project, "cy") is Status.COMPLAINED
    assert _status(project, "dee") is Status.ACTIVE  # named by four reports, suppressed by none
    assert _status(project, "eve") is Status.BOUNCED  # her own token: her own address only
    with project.reading() as conn:
        counts = issue_counts(conn, tokens.read(about("ann")[0])[0])  # type: ignore[index]
    assert counts == {"bounce": 2, "deferred": 1, "spamreport": 1}
    assert all(PROCESSED.encode() in flags for flags in imap.flags())

    # Read again: nothing new. Flags lost (another client cleared them): applied once all the same.
    assert bounces.fetch_configured(project).read == 0
    imap.clear_flags(PROCESSED)
    again = bounces.fetch_configured(project)
    assert again.read == len(messages) and again.suppressed == 0
    assert again.outcomes == {"already applied": 4, "no token": 3, "not a report": 1}
    with project.reading() as conn:
        assert issue_counts(conn, tokens.read(about("ann")[0])[0]) == counts  # type: ignore[index]
    assert [_status(project, n) for n in READERS] == [
        Status.BOUNCED,
        Status.ACTIVE,
        Status.COMPLAINED,
        Status.ACTIVE,
        Status.BOUNCED,
    ]


def test_the_command_reports_and_names_what_is_wrong(
    tmp_path: Path, imap: Imap, smtp: tuple[int, Inbox]
) -> None:
    _empty(imap)
    port, _ = smtp
    path = configure(tmp_path, port, imap)
    imap.append(sample("autoreply.eml", "ann.reader@example.com"))
    result = CliRunner(env=environ(imap)).invoke(
        app, ["bounces", "fetch", "--config", str(path)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stdout
    assert "1 new message in the bounce mailbox" in result.stdout
    assert "1 not a bounce or a complaint" in result.stdout
    assert "0 readers suppressed" in result.stdout

    def project_of(config: Path, env: dict[str, str]) -> Project:
        return Project(load_config(config, env), db.make_engine("sqlite://"))  # never used

    project = project_of(path, {**environ(imap), IMAP_PASSWORD_ENV: "wrong"})
    with pytest.raises(DigestError, match=f"cannot log in as {imap.user}") as wrong:
        bounces.fetch_configured(project)
    assert wrong.value.where == f"imap {imap.host}:{imap.port}"
    with pytest.raises(SecretMissing, match=IMAP_PASSWORD_ENV):
        project_of(path, {"DIGEST_SECRET_KEY": SECRET}).bounce_mailbox()
    unset = configure(tmp_path / "unset", port, imap, f'address = "{BOUNCE_ADDRESS}"\n')
    with pytest.raises(ConfigError, match=r"bounces\.imap_host: not set"):
        project_of(unset, environ(imap)).bounce_mailbox()
    closed = configure(
        tmp_path / "closed",
        port,
        imap,
        f'address = "{BOUNCE_ADDRESS}"\nimap_host = "127.0.0.1"\nimap_port = 1\n'
        'imap_user = "x"\nimap_tls = "none"\n',
    )
    with pytest.raises(DigestError, match="cannot connect") as refused:
        project_of(closed, environ(imap)).bounce_mailbox().__enter__()
    assert refused.value.where == "imap 127.0.0.1:1" and "\n" not in str(refused.value)


def test_the_mailbox_over_tls_verifies_the_server(
    tmp_path: Path, imap: Imap, smtp: tuple[int, Inbox]
) -> None:
    """imaps and STARTTLS reach the mailbox with a context trusting the server's certificate;
    with the system's trust store, the self-signed server is refused, not read."""
    _empty(imap)
    imap.append(sample("autoreply.eml", "ann.reader@example.com"))
    port, _ = smtp
    trusted = ssl.create_default_context(cafile=str(imap.ca_file))
    for tls, imap_port in (("ssl", imap.tls_port), ("starttls", imap.port)):
        table = (
            f'address = "{BOUNCE_ADDRESS}"\nimap_host = "127.0.0.1"\nimap_port = {imap_port}\n'
            f'imap_user = "{imap.user}"\nimap_tls = "{tls}"\n'
        )
        path = configure(tmp_path / tls, port, imap, table)
        project = Project(load_config(path, environ(imap)), db.make_engine("sqlite://"))
        with project.bounce_mailbox(trusted) as mailbox:
            assert [raw for _, raw in mailbox.unprocessed()] != []
        with pytest.raises(DigestError, match=r"cannot connect: .*CERTIFICATE_VERIFY_FAILED"):
            project.bounce_mailbox().__enter__()
