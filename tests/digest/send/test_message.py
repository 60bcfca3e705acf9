"""The headers receivers read raw (List-Unsubscribe, List-Unsubscribe-Post, Feedback-ID), the
Message-ID and the body encodings, checked on the bytes a message is written as."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import compat32
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.send.message import (
    Envelope,
    Personal,
    ascii_uri,
    build_message,
    email_policy,
    feedback_id,
    feedback_sender_id,
    list_unsubscribe,
    message_id,
    serialise,
)
from digest.send.outbox import OutboxTransport
from tests.digest.send.conformance import (
    dkim_problems,
    raw_value,
    rfc5322_problems,
    rfc8058_problems,
)

NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)
TOKEN = "42.awPkcA.52sddqQ-ERQ2_s_wUdAgwWcJpFe4BU_Avzaf-g48_cI"


def envelope(mailto: str | None = "unsubscribe@northwind.example") -> Envelope:
    return Envelope(
        "Northwind",
        "digest@northwind.example",
        None,
        "Weekly <weekly.northwind.example>",
        mailto,
        feedback_id("weekly", 7, "northwind"),
        "0a1b2c3d4e5f",
    )


def written(
    public_url: str = "https://northwind.example",
    token: str = TOKEN,
    mailto: str | None = "unsubscribe@northwind.example",
    text: str = "Hi there\n",
    html: str = "<p>Hi there</p>",
    subject: str = "News",
    name: str = "Ann Reader",
) -> bytes:
    personal = Personal(
        "reader@example.com",
        name,
        f"{public_url}/unsubscribe/{token}",
        message_id(1, 42, "digest@northwind.example", "0a1b2c3d4e5f"),
    )
    return serialise(build_message(envelope(mailto), personal, subject, text, html, NOW))


def header_lines(raw: bytes, name: bytes) -> list[bytes]:
    """The lines one header field is written on."""
    block = raw[: raw.index(b"\r\n\r\n")].split(b"\r\n")
    start = next(i for i, line in enumerate(block) if line.lower().startswith(name.lower() + b":"))
    end = start + 1
    while end < len(block) and block[end][:1] in (b" ", b"\t"):
        end += 1
    return block[start:end]


def test_list_unsubscribe_is_raw_and_folded_between_its_entries_only() -> None:
    raw = written()
    lines = header_lines(raw, b"List-Unsubscribe")
    assert lines == [
        f"List-Unsubscribe: <https://northwind.example/unsubscribe/{TOKEN}>,".encode(),
        f" <mailto:unsubscribe@northwind.example?subject=unsubscribe%20{TOKEN}>".encode(),
    ]
    assert header_lines(raw, b"List-Unsubscribe-Post") == [
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    ]
    assert header_lines(raw, b"Feedback-ID") == [b"Feedback-ID: weekly-7:weekly:digest:northwind"]
    assert rfc5322_problems(raw) == [] and rfc8058_problems(raw) == []


def test_a_short_list_unsubscribe_stays_on_one_line() -> None:
    raw = written(token="t1", mailto=None)
    assert header_lines(raw, b"List-Unsubscribe") == [
        b"List-Unsubscribe: <https://northwind.example/unsubscribe/t1>"
    ]


TOKENS = st.from_regex(r"[A-Za-z0-9._~-]{1,300}", fullmatch=True)
PATHS = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12), max_size=4
)
HOSTS = st.sampled_from(
    ["northwind.example", "bücher.example", "xn--bcher-kva.example", "localhost:8000"]
)
MAILTOS = st.sampled_from(
    [None, "unsubscribe@northwind.example", "abmelden@bücher.example", "u+list@a.example"]
)


@settings(max_examples=150, deadline=None)
@given(TOKENS, HOSTS, PATHS, MAILTOS)
def test_any_unsubscribe_header_is_written_raw_within_line_limits(
    token: str, host: str, path: list[str], mailto: str | None
) -> None:
    """Whatever the token, host, path (any Unicode) and mailto: the header is ASCII with no
    encoded word, unfolds to exactly what was built, is never folded inside a URI, and its
    lines keep within 78 characters unless one URI alone is longer (998 at most)."""
    public_url = f"https://{host}" + "".join(f"/{segment}" for segment in path)
    built = list_unsubscribe(mailto, f"{public_url}/unsubscribe/{token}")
    raw = written(public_url, token, mailto)
    lines = header_lines(raw, b"List-Unsubscribe")
    unfolded = b"".join(lines).decode("ascii").partition(": ")[2]
    assert unfolded == built
    assert b"=?" not in b"".join(lines)
    for line in lines:
        text = line.decode("ascii")
        assert text.count("<") == text.count(">")  # no URI split across lines
        assert len(text) <= 998
        assert len(text) <= 78 or text.count("<") == 1  # only a URI alone may be longer
    uris = re.findall(r"<([^<>]*)>", built)
    assert uris[0].startswith("https://") and uris[0].endswith(f"/unsubscribe/{token}")
    assert all(re.fullmatch(r"[!#-;=?-\[\]_a-z~]+", uri) for uri in uris), uris
    assert (len(uris) == 2) == (mailto is not None)
    assert rfc5322_problems(raw) == []


def test_non_ascii_uris_get_their_ascii_form() -> None:
    assert ascii_uri("https://bücher.example/ü x") == "https://xn--bcher-kva.example/%C3%BC%20x"
    assert ascii_uri("https://northwind.example/a?b=c") == "https://northwind.example/a?b=c"
    header = list_unsubscribe("abmelden@bücher.example", "https://a.example/unsubscribe/t")
    assert "<mailto:abmelden@xn--bcher-kva.example?subject=unsubscribe%20t>" in header


@pytest.mark.parametrize(
    ("value", "why"),
    [("weekly-7:wéekly:digest:north", "printable ASCII"), ("x" * 1000, "over 998")],
)
def test_a_raw_header_that_cannot_be_written_fails_its_message_alone(
    tmp_path: Path, value: str, why: str
) -> None:
    bad = build_message(
        envelope(),
        Personal("a@example.com", "", "https://a.example/unsubscribe/t", "<1@a.example>"),
        "News",
        "text",
        "<p>html</p>",
        NOW,
    )
    del bad["Feedback-ID"]
    bad["Feedback-ID"] = value
    with pytest.raises(ValueError, match=why):
        serialise(bad)
    good = EmailMessage(policy=email_policy())
    good["From"], good["To"], good["Subject"] = "a@example.com", "b@example.com", "hi"
    good.set_content("hello")
    outbox = OutboxTransport(tmp_path, lambda: NOW)
    refused = outbox.write([(1, bad), (2, good)])
    assert list(refused) == [1] and why in refused[1]
    assert [path.name for path in tmp_path.glob("*.eml")] == ["000002-b@example.com.eml"]


@given(st.text(max_size=80), st.integers(1, 10**6), st.text(max_size=30))
def test_feedback_id_has_four_clean_fields_whatever_it_is_made_of(
    slug: str, number: int, sender: str
) -> None:
    fields = feedback_id(slug, number, sender).split(":")
    assert len(fields) == 4
    assert all(re.fullmatch(r"[A-Za-z0-9._-]*", field) for field in fields)
    assert fields[0] == f"{fields[1]}-{number}" and fields[2] == "digest"
    assert len(fields[3]) <= 15


@pytest.mark.parametrize(
    ("address", "sender_id"),
    [
        ("digest@northwind.example", "northwind"),
        ("digest@mail.northwind.example", "northwind"),
        ("news@a.io", "a-mail"),
        ("news@bücher.de", "xn--bcher-kva"),
        ("d@a-very-long-company-name.example", "a-very-long-com"),
        ("d@localhost", "localhost"),
    ],
)
def test_the_sender_id_comes_from_the_domain(address: str, sender_id: str) -> None:
    assert feedback_sender_id(address) == sender_id
    assert 5 <= len(sender_id) <= 15


def test_message_ids_carry_the_issue_key() -> None:
    assert (
        message_id(3, 42, "d@northwind.example", "ab12") == "<digest.3.42.ab12@northwind.example>"
    )
    assert message_id(3, 42, "d@northwind.example", None) == "<digest.3.42@northwind.example>"
    assert message_id(3, 42, "d@bücher.de", "k") == "<digest.3.42.k@xn--bcher-kva.de>"
    assert raw_value(written(), "Message-ID") == ["<digest.1.42.0a1b2c3d4e5f@northwind.example>"]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("plain short ASCII\n", "7bit"),
        ("Grüße, · and …\n", "quoted-printable"),
        ("ä" * 400 + "\n", "quoted-printable"),
        ("a" * 2000 + "\n", "quoted-printable"),
    ],
)
def test_bodies_are_seven_bit_and_never_base64(text: str, encoding: str) -> None:
    raw = written(text=text, html=f"<p>{text}</p>")
    parts = re.findall(rb"Content-Transfer-Encoding: ([\w-]+)", raw)
    assert parts[0].decode() == encoding and b"base64" not in parts
    body = raw[raw.index(b"\r\n\r\n") :]
    assert max(raw) < 0x80 and max(map(len, body.split(b"\r\n"))) <= 78
    assert rfc5322_problems(raw) == [] and dkim_problems(raw, b"northwind.example") == []


PIECES = st.sampled_from(["a", "b", " ", "é", "—", "·", "𐀀", "李", "x y"])


@given(
    subject=st.lists(PIECES, min_size=30, max_size=120).map("".join),
    name=st.lists(PIECES, max_size=60).map("".join),
)
@settings(max_examples=300)
def test_non_ascii_subjects_and_names_decode_exactly(subject: str, name: str) -> None:
    """Python's own folder drops or adds the space between encoded words (one subject in
    eight of these) and can split a word's ``?=``: the subject and the name must decode
    (RFC 2047 alone, as mail programs do) to exactly the text meant, in lines of at most 78."""
    subject, name = " ".join(subject.split()) or "a", " ".join(name.split())
    raw = written(subject=subject, name=name)
    head = message_from_bytes(raw, policy=compat32)
    assert str(make_header(decode_header(head["Subject"].replace("\r\n", "").strip()))) == subject
    to = str(make_header(decode_header(head["To"].replace("\r\n", "").strip())))
    assert to == (f"{name} <reader@example.com>" if name else "reader@example.com")
    for field in (b"To", b"Subject"):
        assert max(map(len, header_lines(raw, field))) <= 78
    assert rfc5322_problems(raw) == []


GOOD = written()


@pytest.mark.parametrize(
    ("spoil", "found"),
    [
        (lambda raw: raw.replace(b"Hi there", "Hï there".encode()), "8-bit byte"),
        (lambda raw: raw.replace(b"Hi there\r\n", b"Hi there\n", 1), "without CRLF"),
        (lambda raw: raw.replace(b"Subject: News", b"Subject: " + b"x" * 1000), "line 3"),
        (lambda raw: b"From: x@y.example\r\n" + raw, "From appears 2 times"),
        (lambda raw: raw.replace(b"To: Ann Reader <", b"To: Ann Reader <<"), "To:"),
        (lambda raw: raw.replace(b"\r\nSubject", b"\r\nbroken line\r\nSubject"), "no field"),
    ],
)
def test_the_strict_check_finds_what_it_should(spoil: object, found: str) -> None:
    assert callable(spoil)
    problems = rfc5322_problems(spoil(GOOD))
    assert any(found in problem for problem in problems), problems
    assert rfc5322_problems(GOOD) == []


@pytest.mark.parametrize(
    ("spoil", "found"),
    [
        (
            lambda raw: re.sub(
                rb"List-Unsubscribe: [^\r]*\r\n [^\r]*",
                b"List-Unsubscribe: =?utf-8?q?=3Chttps=3A//a=2Eexample/u=3E?=",
                raw,
            ),
            "encoded word",
        ),
        (lambda raw: raw.replace(b"<https://", b"<http://", 1), "no https URI"),
        (lambda raw: raw.replace(b"=One-Click", b"=One-click"), "List-Unsubscribe-Post is"),
        (lambda raw: raw.replace(b"unsubscribe/42", b"unsubscribe/ 42", 1), "not a list of"),
    ],
)
def test_the_one_click_check_finds_what_it_should(spoil: object, found: str) -> None:
    assert callable(spoil)
    problems = rfc8058_problems(spoil(GOOD))
    assert any(found in problem for problem in problems), problems
