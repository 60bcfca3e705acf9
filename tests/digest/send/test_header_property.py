"""Property: for any Unicode reader name, post title and topic name, the message built for
the reader parses back (strictly, ``policy=default``) with exactly the headers meant, from the
bytes the outbox writes and from the bytes a real SMTP server receives.

Titles and topic names reach the Subject through the subject template; the name reaches To
and, as the first name, the subject too (``%%first_name_text%%``).

The subject and the reader's name must come back exactly as RFC 2047 decodes them (white
space between encoded words dropped, §6.2: what mail programs do). CPython's newer parser adds
a space at some of those places, so through it they are compared without white space.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.config import SmtpConfig
from digest.models import Issue, Topic, Variant
from digest.render import EmailContext, Renderer
from digest.render.environment import make_environment
from digest.render.layout import CardView, SectionView
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient
from digest.send.message import Envelope, Personal, build_message, header_text, list_id, serialise
from digest.send.outbox import OutboxTransport
from digest.send.smtp import SmtpTransport
from subscribers.models import first_name_of
from subscribers.names import usable_name
from tests.digest.send.test_hostile_send import RawInbox, smtp_server
from tests.hostile import NAMES, header_names

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
FIELDS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
]
SUBJECT = "{{ titles | join(' / ') }} in {{ topic_names }} for %%first_name_text%%"
RENDERER = Renderer(
    EmailContext(
        "Northwind",
        "https://northwind.example",
        "1 Main St",
        "Weekly",
        "UTC",
        subject_template=SUBJECT,
    ),
    make_environment(),
)
ENVELOPE = Envelope(
    "Northwind Weekly",
    "digest@northwind.example",
    None,
    list_id("Weekly", "weekly", "digest@northwind.example"),
    None,
)


def batch_for(name: str, title: str, topic: str) -> OutgoingBatch:
    issue = Issue("weekly", 1, (), NOW, id=1, created_at=NOW)
    card = CardView(1, title, "https://northwind.example/1", "", None, "", 1, None)
    subject = RENDERER.subject(issue, (SectionView(Topic("t", topic), (card,)),))
    variant = Variant(frozenset({"t"}), subject, "<p>%%first_name%%</p>", "%%first_name_text%%")
    usable = usable_name(name)
    reader = Recipient(7, "reader@example.com", usable, first_name_of(usable) or "there", "tok")
    compiled = CompiledVariant.of(variant, "https://northwind.example")
    return OutgoingBatch(1, "weekly", 1, ENVELOPE, compiled, (reader,), "https://northwind.example")


def same_text(shown: str, meant: str) -> bool:
    return "".join(shown.split()) == "".join(meant.split())


def rfc2047_header(raw: bytes, name: str) -> str:
    """The header's value decoded by RFC 2047 alone, unfolded."""
    value = message_from_bytes(raw, policy=policy.compat32)[name]
    return str(make_header(decode_header(value.replace("\r\n", "").strip())))


def check_bytes(raw: bytes, batch: OutgoingBatch) -> None:
    assert header_names(raw) == FIELDS
    parsed = message_from_bytes(raw, policy=policy.default.clone(raise_on_defect=True))
    assert isinstance(parsed, EmailMessage)
    assert list(parsed.keys()) == FIELDS
    [reader] = batch.recipients
    [to] = parsed["To"].addresses
    assert to.addr_spec == reader.email
    assert same_text(to.display_name, reader.name), (to.display_name, reader.name)
    meant = header_text(batch.variant.subject.fill(reader.values()))
    assert same_text(str(parsed["Subject"]), meant), (str(parsed["Subject"]), meant)
    assert rfc2047_header(raw, "Subject") == meant
    if not to.display_name.isascii():  # an ASCII name is a quoted string, checked above
        written = rfc2047_header(raw, "To").rpartition(" <")[0]
        assert written == " ".join(reader.name.split())
    assert str(parsed["From"]) == "Northwind Weekly <digest@northwind.example>"


HOSTILE = st.sampled_from([h.value for h in NAMES])
"""The hostile classes (tests/data/hostile/names.txt), mixed into every strategy."""
names = st.one_of(HOSTILE, st.text(max_size=250))
titles = st.one_of(HOSTILE, st.text(max_size=250))
topics = st.one_of(HOSTILE, st.text(max_size=60))


def test_every_message_parses_back_with_exactly_the_headers_meant(tmp_path: Path) -> None:
    inbox = RawInbox()
    outbox = OutboxTransport(tmp_path / "outbox", lambda: NOW)
    with smtp_server(inbox) as port:
        smtp = SmtpTransport(SmtpConfig(host="127.0.0.1", port=port), None, lambda: NOW)

        @settings(
            max_examples=200,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(names, titles, topics)
        def check(name: str, title: str, topic: str) -> None:
            batch = batch_for(name, title, topic)
            assert outbox.deliver(batch) == {}
            [written] = list(outbox.folder.glob("*.eml"))
            check_bytes(written.read_bytes(), batch)
            written.unlink()
            inbox.received.clear()
            assert smtp.deliver(batch) == {}
            [(_, recipients, raw)] = inbox.received
            assert recipients == ["reader@example.com"]
            check_bytes(raw, batch)

        check()


def test_list_unsubscribe_goes_out_as_urls_not_encoded_words() -> None:
    """A signed token makes the URL longer than a 78-character line; folded at 78, the header
    became RFC 2047 encoded words, where no mail program looks for a URL."""
    envelope = Envelope(
        "Weekly", "digest@northwind.example", None, "W <w.northwind.example>", "u@northwind.example"
    )
    url = "https://digest.northwind.example/unsubscribe/123456.aw_zSg." + "x" * 43
    message = build_message(
        envelope, Personal("r@example.com", "", url, "<m@northwind.example>"), "s", "t", "h", NOW
    )
    raw = serialise(message)
    # Folded, if at all, only between the entries (RFC 5322 unfolding removes the CRLF).
    unfolded = raw.replace(b",\r\n <", b", <")
    assert f"\r\nList-Unsubscribe: <{url}>, <mailto:u@northwind.example?subject=".encode() in (
        unfolded
    )
    assert b"=?" not in raw.partition(b"\r\n\r\n")[0]
