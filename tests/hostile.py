"""Hostile values (tests/data/hostile/*.txt) and checks on the raw bytes of a message.

The checks read the bytes as a strict receiver would, never through a forgiving parser alone:
the header block is split at CRLF by hand, every line must be a field or a folded continuation,
and every RFC 2047 encoded word in it is decoded to make sure none hides a line break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import decode_header
from email.message import EmailMessage
from pathlib import Path

HOSTILE = Path(__file__).parent / "data" / "hostile"

INJECTED = ("evil@example.com", "Forged body", "Bcc")
"""What a hostile value tries to get into a message: none of it may appear, raw or decoded."""

_FIELD = re.compile(rb"^([!-9;-~]+):")
_ENCODED_WORD = re.compile(rb"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")


@dataclass(frozen=True)
class Hostile:
    kind: str
    value: str

    def __str__(self) -> str:  # pytest ids
        return self.kind


def _unescape(text: str) -> str:
    if text.startswith("@repeat "):
        _, count, piece = text.split(" ", 2)
        return piece * int(count)
    return text.encode("ascii").decode("unicode_escape")


def load(name: str) -> list[Hostile]:
    """The classes of one file (names.txt, addresses.txt), in its order."""
    found: list[Hostile] = []
    for line in (HOSTILE / name).read_text(encoding="ascii").splitlines():
        if line and not line.startswith("#"):
            kind, _, value = line.partition("\t")
            found.append(Hostile(kind, _unescape(value)))
    return found


NAMES = load("names.txt")
ADDRESSES = load("addresses.txt")


def header_block(raw: bytes) -> bytes:
    head, separator, _ = raw.partition(b"\r\n\r\n")
    assert separator, "no blank line ends the headers"
    return head


def header_names(raw: bytes) -> list[str]:
    """The fields of the header block as a strict receiver reads them: lines end in CRLF and
    nowhere else, and a line is a field or the continuation of one."""
    names: list[str] = []
    for line in header_block(raw).split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line, f"a bare line break: {line!r}"
        assert b"\x00" not in line, f"a NUL in a header: {line!r}"
        if line[:1] in (b" ", b"\t"):
            assert names, "a continuation before any field"
            continue
        field = _FIELD.match(line)
        assert field, f"not a header line: {line[:120]!r}"
        names.append(field.group(1).decode("ascii"))
    return names


def decoded_headers(raw: bytes) -> str:
    """The header block with every encoded word decoded (what a mail program shows)."""
    text = header_block(raw).decode("utf-8", "replace")
    unfolded = re.sub(r"\r\n[ \t]", " ", text)
    out: list[str] = []
    for line in unfolded.split("\r\n"):
        parts = decode_header(line)
        out.append(
            "".join(
                part.decode(charset or "ascii", "replace") if isinstance(part, bytes) else part
                for part, charset in parts
            )
        )
    return "\n".join(out)


def assert_nothing_injected(raw: bytes, expected_fields: list[str]) -> EmailMessage:
    """Exactly ``expected_fields`` in the raw header block, no encoded word decoding to a
    control character, and nothing a hostile value tried to add anywhere in the message."""
    assert header_names(raw) == expected_fields
    for word in _ENCODED_WORD.findall(header_block(raw)):
        for part, charset in decode_header(word.decode("ascii")):
            text = part.decode(charset or "ascii", "replace") if isinstance(part, bytes) else part
            assert not any(c < " " or "\x7f" <= c <= "\x9f" for c in text), word
            assert "\u2028" not in text and "\u2029" not in text, word
    shown = decoded_headers(raw)
    for marker in INJECTED:
        assert marker.encode() not in header_block(raw), marker
        assert marker not in shown, marker
    for marker in INJECTED[:2]:  # neither is ever in base64 text: "@" and " " are not
        assert marker.encode() not in raw, marker
    message = message_from_bytes(raw, policy=policy.default.clone(raise_on_defect=True))
    assert isinstance(message, EmailMessage)
    assert list(message.keys()) == expected_fields
    for part in message.walk():
        if part.get_content_maintype() == "text":
            body = part.get_content()
            assert not any(marker in body for marker in INJECTED), part.get_content_type()
    return message


DIGEST_FIELDS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
]
"""The headers of one digest email, in order (the example site sets a Reply-To)."""

SERVICE_FIELDS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Auto-Submitted",
]
"""The headers of a confirmation request or a preferences link."""
