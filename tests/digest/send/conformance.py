"""Judging a message's raw bytes with tools nobody here wrote, as receivers and auditors do.

- :func:`rfc5322_problems`: the lines themselves (CRLF, 7-bit, at most 998 characters), then
  Python's email package with ``policy.strict`` (every parse defect raises) and every header
  parsed by ``email.headerregistry`` with its defects listed.
- :func:`rfc8058_problems`: one-click unsubscribe as Gmail and Yahoo require it, read from the
  raw header (what their one-click code reads), and a DKIM signature over both headers made
  and checked by dkimpy on the bytes as written.
- :func:`spamassassin`: ``spamassassin -t -L`` over an mbox of the messages, one process,
  with the plugin list and settings of ``tests/data/spamassassin`` rather than the machine's.
"""

from __future__ import annotations

import base64
import mailbox
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.errors import MessageError
from email.message import EmailMessage
from functools import cache
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

SPAMASSASSIN_DATA = Path(__file__).parents[2] / "data" / "spamassassin"
SPAMASSASSIN_RULES = Path("/usr/share/spamassassin")
"""The rules the Debian package ships (SpamAssassin 4.0.1's release rules): no ``sa-update``
download is needed, and a machine that ran one still tests against the same rules."""

MAX_LINE = 998
PREFERRED_LINE = 78
ONE_CLICK = "List-Unsubscribe=One-Click"
SIGNED = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"List-Id",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"Feedback-ID",
)
SINGLE = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type")
SINGLE_RAW = ("List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Feedback-ID", "Reply-To")


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    assert end > 0, "no blank line after the headers"
    return raw[: end + 2]


def raw_fields(raw: bytes) -> list[tuple[str, str]]:
    """The top-level header fields as written: (name, value unfolded by removing each CRLF
    before white space, as RFC 5322 §2.2.3 unfolds; the white space stays)."""
    unfolded = re.sub(rb"\r\n(?=[ \t])", b"", header_block(raw))
    fields = []
    for line in unfolded.split(b"\r\n")[:-1]:
        name, colon, value = line.partition(b":")
        assert colon, line
        fields.append((name.decode("ascii"), value.decode("ascii").lstrip(" \t")))
    return fields


def raw_value(raw: bytes, name: str) -> list[str]:
    return [value for field, value in raw_fields(raw) if field.lower() == name.lower()]


def line_problems(raw: bytes) -> list[str]:
    problems = []
    if re.search(rb"\r(?!\n)|(?<!\r)\n", raw):
        problems.append("a line ends without CRLF")
    eight_bit = re.search(rb"[\x80-\xff]", raw)
    if eight_bit:
        problems.append(f"an 8-bit byte at {eight_bit.start()}: a DKIM signer must re-encode it")
    if b"\x00" in raw:
        problems.append("a NUL byte")
    for number, line in enumerate(raw.split(b"\r\n"), 1):
        if len(line) > MAX_LINE:
            problems.append(f"line {number} has {len(line)} characters (at most {MAX_LINE})")
    for number, line in enumerate(header_block(raw).split(b"\r\n")[:-1], 1):
        if not line[:1].isspace() and not re.fullmatch(rb"[!-9;-~]+:.*", line):
            problems.append(f"header line {number} is no field: {line[:60]!r}")
    return problems


def rfc5322_problems(raw: bytes) -> list[str]:
    """Everything a strict reader finds wrong with the message, or []."""
    problems = line_problems(raw)
    try:
        message = message_from_bytes(raw, policy=policy.strict)
    except (MessageError, ValueError) as err:
        return [*problems, f"strict parse: {type(err).__name__}: {err}"]
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        problems += [f"{part.get_content_type()}: {d!r}" for d in part.defects]
        for name, value in part.items():
            problems += [f"{name}: {d!r}" for d in getattr(value, "defects", ())]
    names = [name.lower() for name, _ in raw_fields(raw)]
    for name in SINGLE + SINGLE_RAW:
        count = names.count(name.lower())
        if count > 1 or (count == 0 and name in SINGLE):
            problems.append(f"{name} appears {count} times")
    if message.get_content_type() != "multipart/alternative":
        problems.append(f"a {message.get_content_type()} message")
    for part in message.walk():
        encoding = part.get("Content-Transfer-Encoding", "7bit").lower()
        if part.get_content_maintype() == "text" and encoding not in ("7bit", "quoted-printable"):
            problems.append(f"{part.get_content_type()} in {encoding}")
    return problems


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes
    dns_record: bytes


@cache
def dkim_key() -> DkimKey:
    """A throwaway signing key and the DNS TXT record that would publish it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))


def dkim_problems(raw: bytes, domain: bytes) -> list[str]:
    """Sign the bytes as written (simple canonicalization: not one byte may change), over
    both one-click headers, and verify: RFC 8058 §4 wants them covered by a valid signature."""
    key = dkim_key()
    present = {name.lower() for name, _ in raw_fields(raw)}
    headers = [h for h in SIGNED if h.decode().lower() in present]
    signature = dkim.sign(
        raw,
        b"conformance",
        domain,
        key.private_pem,
        canonicalize=(b"simple", b"simple"),
        include_headers=headers,
        linesep=b"\r\n",
    )

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"conformance._domainkey." + domain + b".", name
        return key.dns_record

    if not dkim.verify(signature + raw, dnsfunc=dns):
        return ["the DKIM signature of the bytes as written does not verify"]
    return []


def rfc8058_problems(raw: bytes, https_required: bool = True) -> list[str]:
    """RFC 8058 one-click unsubscribe, read from the raw header as receivers read it."""
    problems = []
    [unsubscribe] = raw_value(raw, "List-Unsubscribe") or [""]
    [post] = raw_value(raw, "List-Unsubscribe-Post") or [""]
    if "=?" in unsubscribe:
        problems.append(f"List-Unsubscribe holds an encoded word: {unsubscribe[:60]}")
    if not re.fullmatch(r"<[^<>\s]+>(?:,[ \t]*<[^<>\s]+>)*", unsubscribe):
        problems.append(f"List-Unsubscribe is not a list of <URI>s: {unsubscribe[:80]!r}")
    uris = re.findall(r"<([^<>]*)>", unsubscribe)
    if https_required and not any(uri.startswith("https://") for uri in uris):
        problems.append(f"no https URI in List-Unsubscribe: {uris}")
    if post != ONE_CLICK:
        problems.append(f"List-Unsubscribe-Post is {post!r}, not {ONE_CLICK!r}")
    [sender] = raw_value(raw, "From")
    domain = sender.rpartition("@")[2].rstrip(">").encode("ascii")
    return problems + dkim_problems(raw, domain)


def long_lines(raw: bytes) -> list[str]:
    """Header lines over the preferred 78 characters that could have been folded: any with
    white space after its first 78 characters (a URI longer than a line cannot be)."""
    found = []
    for line in header_block(raw).split(b"\r\n"):
        if len(line) > PREFERRED_LINE and re.search(rb"[^ \t][ \t]", line[PREFERRED_LINE:]):
            found.append(line.decode("ascii", "replace")[:80])
    return found


@dataclass(frozen=True)
class Verdict:
    message_id: str
    total: float
    hits: dict[str, float]


def spamassassin_command() -> list[str]:
    """``spamassassin -t -L`` with the test's plugin list and settings, the rules the package
    ships, and no user preferences (``-x``: none created either). Skips where SpamAssassin is
    not installed, except on CI (``.ci/run`` installs it), where that fails."""
    found = shutil.which("spamassassin")
    if found is None or not SPAMASSASSIN_RULES.is_dir():
        if os.environ.get("CI"):
            pytest.fail("spamassassin is not installed: .ci/run installs Debian's package")
        pytest.skip("spamassassin is not installed (apt-get install spamassassin)")
    return [
        found,
        "-t",
        "-L",
        "-x",
        f"--configpath={SPAMASSASSIN_RULES}",
        f"--siteconfigpath={SPAMASSASSIN_DATA / 'site'}",
        f"--prefspath={SPAMASSASSIN_DATA / 'user_prefs.cf'}",
        "--mbox",
    ]


def spamassassin(messages: Sequence[bytes], folder: Path) -> list[Verdict]:
    """Every message through one SpamAssassin process (it takes seconds to start, a fraction
    of one per message), its verdict read from the headers it adds."""
    source = mailbox.mbox(folder / "in.mbox")
    for raw in messages:
        source.add(raw.replace(b"\r\n", b"\n"))
    source.close()
    with (folder / "in.mbox").open("rb") as given, (folder / "out.mbox").open("wb") as out:
        result = subprocess.run(
            spamassassin_command(),
            stdin=given,
            stdout=out,
            stderr=subprocess.PIPE,
            env={**os.environ, "HOME": str(folder)},
            check=False,
            timeout=600,
        )
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    verdicts = []
    for message in mailbox.mbox(folder / "out.mbox"):
        hits_text = re.sub(r"\s+", "", message.get("X-Spam-Hits", ""))
        hits = {}
        for hit in hits_text.split(",") if hits_text != "none" else ():
            rule, _, score = hit.partition("=")
            hits[rule] = float(score)
        verdicts.append(Verdict(message["Message-ID"], float(message["X-Spam-Total"]), hits))
    assert len(verdicts) == len(messages), result.stderr.decode(errors="replace")[-2000:]
    return verdicts
