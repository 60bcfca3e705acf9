"""Building one recipient's MIME message from a variant, and the bytes it leaves as. Pure.

Whatever the stored values hold, a message built here carries exactly the headers it means to.
Display names the name rule refuses are left out (:func:`subscribers.names.usable_name`), the
subject is made one line of plain text (:func:`header_text`), and the serialiser checks every
header it writes (``verify_generated_headers``, the fix of CVE-2024-6923), so a value that
slipped through all the same fails its own message instead of adding a header. A Python
without that check is refused at start-up (:func:`require_header_verification`).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policies
from email.header import Header
from email.headerregistry import (
    Address,
    BaseHeader,
    HeaderRegistry,
    UniqueAddressHeader,
    UniqueUnstructuredHeader,
)
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from email_validator import EmailNotValidError, validate_email

from digest.errors import DigestError
from subscribers.names import BIDI_CONTROLS, name_problem, usable_name

MINIMUM_PYTHON = (
    "3.13.0+, 3.12.5+ or 3.11.10+ (or a build with the fix of CVE-2024-6923, such as "
    "Debian's 3.11.2-6+deb12u3)"
)


def header_verification_problem(policy: Any = email_policies.default) -> str | None:
    """Why this Python's email package cannot be trusted to write headers, or None.

    Before the fix of CVE-2024-6923 the serialiser wrote a header holding a line break as it
    was (an RFC 2047 encoded word it had decoded, say), and had no check to turn on."""
    if not hasattr(policy, "verify_generated_headers"):
        version = sys.version.split()[0]
        return (
            f"this Python ({version}) does not check the email headers it writes "
            f"(verify_generated_headers); the digest needs Python {MINIMUM_PYTHON}"
        )
    return None


def require_header_verification() -> None:
    """Refuse to run, in one line, on a Python that could write a header it was not asked to.
    The CLI, the web app and the scheduler call it as they start."""
    problem = header_verification_problem()
    if problem:
        raise DigestError(problem, where="python")


MAX_LINE = 998
"""RFC 5322 §2.1.1: the most characters a line of a message may hold (without its CRLF)."""

_LIST_ENTRY_BREAK = re.compile(r"(?<=>),[ \t]*(?=<)")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


class VerbatimHeader(BaseHeader):
    """A header written exactly as it was given: never RFC 2047-encoded, folded only after
    the comma between two angle-bracketed entries (the one place RFC 2369 lets a list
    header's URLs be folded without changing them).

    Python's own folding encodes any token longer than a line, which turns a long
    ``List-Unsubscribe`` into ``=?utf-8?q?=3Chttps…`` that one-click receivers ignore, and
    would make a DKIM signer's copy differ from the receiver's. Values must be printable
    ASCII (what these headers carry, URLs and ids); anything else, or a line longer than
    :data:`MAX_LINE`, fails the message when it is written (a ValueError, like the
    serialiser's own check)."""

    max_count = 1

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        kwds["decoded"] = value
        kwds["parse_tree"] = None  # only BaseHeader.fold reads it, and fold is our own

    def fold(self, *, policy: Any) -> str:
        name = self.name
        value = str(self)
        if not _PRINTABLE_ASCII.fullmatch(value):
            raise ValueError(f"{name} must be printable ASCII: {value[:80]!r}")
        limit = policy.max_line_length or MAX_LINE
        lines = [f"{name}: {value}"]
        if len(lines[0]) > limit:
            entries = _LIST_ENTRY_BREAK.split(value)
            lines = [f"{name}:"]
            for number, entry in enumerate(entries):
                piece = f" {entry}," if number < len(entries) - 1 else f" {entry}"
                if number and len(lines[-1]) + len(piece) > limit:
                    lines.append(piece)
                else:
                    lines[-1] += piece
        if any(len(line) > MAX_LINE for line in lines):
            raise ValueError(f"{name} has a line over {MAX_LINE} characters")
        linesep: str = policy.linesep
        return linesep.join(lines) + linesep


def _encoded_words(text: str, name: str, limit: int, linesep: str) -> str:
    """``text`` as RFC 2047 encoded words, folded between whole words within ``limit``."""
    return Header(text, "utf-8", maxlinelen=limit, header_name=name).encode(linesep=linesep)


# typeshed types max_count and init differently on the registry's mixins and on BaseHeader;
# the registry combines the two classes the same way at run time.
class WordSafeSubject(UniqueUnstructuredHeader, BaseHeader):  # type: ignore[misc]
    """The subject, folded by the email package's older header encoder when it is not ASCII.

    The standard folder loses or adds the space between two encoded words, and can even split
    the ``?=`` that ends one across lines, once a line holds a few of them (one folded subject
    in eight with ``é``, ``—`` and ``𐀀`` in it, on every Python checked: 3.11 to 3.13). The
    older encoder encodes the whole text as words of whole characters and folds between them,
    so what a mail program decodes is exactly the text meant."""

    def fold(self, *, policy: Any) -> str:
        value = str(self)
        if value.isascii():
            return super().fold(policy=policy)
        linesep: str = policy.linesep
        limit = policy.max_line_length or MAX_LINE
        return f"{self.name}: {_encoded_words(value, self.name, limit, linesep)}{linesep}"


class WordSafeAddress(UniqueAddressHeader, BaseHeader):  # type: ignore[misc]
    """From, To and Reply-To, whose display names fold as :class:`WordSafeSubject` does."""

    def fold(self, *, policy: Any) -> str:
        if str(self).isascii():
            return super().fold(policy=policy)
        linesep: str = policy.linesep
        limit = policy.max_line_length or MAX_LINE
        lines = [f"{self.name}:"]
        for number, address in enumerate(self.addresses):
            end = "," if number < len(self.addresses) - 1 else ""
            spec = f"<{address.addr_spec}>{end}"
            if address.display_name.isascii():
                pieces = [f" {Address(address.display_name, addr_spec=address.addr_spec)}{end}"]
            else:
                words = _encoded_words(address.display_name, self.name, limit, linesep)
                pieces = [f" {line.lstrip()}" for line in words.split(linesep)] + [f" {spec}"]
            for piece in pieces:
                if len(lines[-1]) + len(piece) > limit and lines[-1] != f"{self.name}:":
                    lines.append(piece)
                else:
                    lines[-1] += piece
        return linesep.join(lines) + linesep


ONE_CLICK = "List-Unsubscribe=One-Click"
"""RFC 8058's List-Unsubscribe-Post value, exactly."""

VERBATIM_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID")
"""Headers whose receivers read them raw: written by :class:`VerbatimHeader`."""


@cache
def email_policy() -> EmailPolicy[EmailMessage]:
    """The policy of every message built here: the standard one, with the check of the
    headers it writes on (it is on by default where it exists; here it is on whatever the
    default becomes), the :data:`VERBATIM_HEADERS` written as they are, and bodies in 7-bit
    transfer encodings (quoted-printable for text that is not plain short-lined ASCII), so
    a DKIM signer or a relay without 8BITMIME never has to re-encode what was signed."""
    require_header_verification()
    registry = HeaderRegistry()
    for name in VERBATIM_HEADERS:
        registry.map_to_type(name, VerbatimHeader)
    registry.map_to_type("Subject", WordSafeSubject)
    for name in ("From", "To", "Reply-To"):
        registry.map_to_type(name, WordSafeAddress)
    return email_policies.default.clone(
        verify_generated_headers=True, header_factory=registry, cte_type="7bit"
    )


def serialise(message: EmailMessage) -> bytes:
    """The bytes that leave the process (an ``.eml`` file, an SMTP transaction's data), with
    CRLF line ends. Raises ValueError (``email.errors.HeaderWriteError`` among others) for a
    message whose headers cannot be written safely."""
    # Folded at 78 (RFC 5322's preferred length): the headers that hold URLs longer than that
    # (List-Unsubscribe) are VerbatimHeaders, never turned into encoded words.
    return message.as_bytes(policy=email_policy().clone(linesep="\r\n"))


def _header_character(char: str) -> str:
    category = unicodedata.category(char)
    if category in ("Cc", "Zl", "Zp"):
        return " "
    if category == "Cs":
        return "\ufffd"
    return "" if char in BIDI_CONTROLS else char


MAX_HEADER_TEXT = 300
"""Characters of a subject (or a List-Id's name): far more than any mail program shows, and
a bound on folding, whose cost in CPython grows so fast with the header's length that a
900 KB title took all 24 GB of a machine."""


def header_text(value: str) -> str:
    """``value`` as one line of plain text for an unstructured header (the subject): control
    characters and line breaks become spaces, runs of white space one space, text-direction
    controls go, and ``=?`` gets a zero-width space in it, so no mail program decodes an
    RFC 2047 encoded word the text only looks like (the serialiser writes such text as it is,
    and readers' programs would decode it). Longer than :data:`MAX_HEADER_TEXT`, it is cut
    there with an ellipsis."""
    if len(value) > 4 * MAX_HEADER_TEXT:  # no need to clean what is cut off
        value = value[: 4 * MAX_HEADER_TEXT]
    if not (value.isascii() and value.isprintable()):
        value = "".join(map(_header_character, value))
    if "=?" in value:
        value = value.replace("=?", "=\u200b?")
    text = " ".join(value.split())
    if len(text) > MAX_HEADER_TEXT:
        text = text[: MAX_HEADER_TEXT - 1].rstrip() + "…"
    return text


def transport_address(address: str) -> str:
    """The address as mail carries it: an internationalized domain in its ASCII form
    (``a@bücher.de`` → ``a@xn--bcher-kva.de``). A local part that is not ASCII has no ASCII
    form (only SMTPUTF8 carries it, and imports refuse it): it stays as it is, and its
    message fails to build, alone."""
    if address.isascii():
        return address
    try:
        ascii_form = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return address  # building the message says what is wrong with it
    return ascii_form or address


def mailbox(name: str, address: str) -> Address:
    """A reader's (or an editor's) mailbox for a header: the name when the name rule allows
    it (its white space as single spaces, as a header shows it), else the address alone."""
    return Address(" ".join(usable_name(name).split()), addr_spec=transport_address(address))


def _checked(mailbox_: Address) -> Address:
    """A mailbox whose display name the name rule refuses loses the name: header parsing would
    decode an encoded word in it."""
    if mailbox_.display_name and name_problem(mailbox_.display_name):
        return Address(addr_spec=mailbox_.addr_spec)
    return mailbox_


@dataclass(frozen=True)
class Envelope:
    """Headers shared by every message of an issue."""

    from_name: str
    from_email: str
    reply_to: str | None
    list_id: str
    unsubscribe_mailto: str | None
    feedback_id: str | None = None
    """Gmail's complaint-loop id of the issue (:func:`feedback_id`)."""
    message_key: str | None = None
    """The issue's random key, in every Message-ID of the issue (:func:`message_id`)."""


@dataclass(frozen=True)
class Personal:
    email: str
    name: str
    unsubscribe_url: str
    message_id: str


def list_id(digest_name: str, digest_slug: str, from_email: str) -> str:
    """RFC 2919 List-Id: a human name and a dotted id under the sender's domain."""
    domain = from_email.rpartition("@")[2]
    return f"{header_text(digest_name)} <{digest_slug}.{domain}>"


def message_id(issue_id: int, subscriber_id: int, from_email: str, key: str | None = None) -> str:
    """Deterministic, so a re-send of the same delivery carries the same id (dedupe
    downstream); with the issue's random ``key``, unique across databases too (issue 1 of a
    reset or second database is another issue, and its ids are others). Issues stored before
    keys existed have none: their re-sends keep the ids they went out with."""
    domain = transport_address(from_email).rpartition("@")[2]
    if key:
        return f"<digest.{issue_id}.{subscriber_id}.{key}@{domain}>"
    return f"<digest.{issue_id}.{subscriber_id}@{domain}>"


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
SENDER_ID_LENGTH = (5, 15)
"""Gmail's bounds of the Feedback-ID's SenderId."""


def feedback_sender_id(from_email: str) -> str:
    """A SenderId from the sender's domain when none is configured: the label before the
    top-level domain (``northwind`` for ``digest@mail.northwind.example``), padded to
    Gmail's five characters and cut at its fifteen."""
    labels = transport_address(from_email).rpartition("@")[2].lower().split(".")
    label = _ID_UNSAFE.sub("-", labels[-2] if len(labels) > 1 else labels[0]).strip("-._")
    low, high = SENDER_ID_LENGTH
    if len(label) < low:
        label = f"{label}-mail".lstrip("-")
    return label[:high]


def feedback_id(digest_slug: str, issue_number: int, sender_id: str) -> str:
    """Gmail's ``Feedback-ID: a:b:c:SenderId``: the issue, the digest, the kind of mail and
    the sender, so complaint rates show per issue and per digest without naming any reader.
    The issue field carries the digest's slug too: fields must not repeat each other's
    identifiers (issue 7 of two digests are two campaigns). Values are cut to ids of letters,
    digits, dots, hyphens and underscores (a colon would shift the fields)."""
    digest = _ID_UNSAFE.sub("-", digest_slug)[:40].strip("-") or "digest"
    sender = _ID_UNSAFE.sub("-", sender_id)[: SENDER_ID_LENGTH[1]]
    return f"{digest}-{issue_number}:{digest}:digest:{sender}"


_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]*")
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_URI_KEEP = "-._~:/?#[]@!$&'()*+,;=%"


def ascii_uri(uri: str) -> str:
    """``uri`` with only the characters a URI may hold (RFC 3986), as a header needs it:
    an internationalized host in its ASCII form, anything else percent-encoded as UTF-8.
    Most URIs are already so and come back as they are."""
    if _URI_CHARACTERS.fullmatch(uri):
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if not netloc.isascii():
        host = parts.hostname or ""
        ascii_host = host.encode("idna").decode("ascii")
        netloc = netloc.replace(host, ascii_host) if host in netloc else netloc
    encoded = urlunsplit(parts._replace(netloc=netloc))
    return quote(encoded, safe=_URI_KEEP)


def mailto_address(address: str) -> str:
    """An address as a ``mailto:`` URI holds it (RFC 6068): the domain in its ASCII form,
    characters a URI cannot hold in the local part percent-encoded."""
    return quote(transport_address(address), safe="@!$'*+,;=-._~")


def list_unsubscribe(unsubscribe_mailto: str | None, unsubscribe_url: str) -> str:
    """RFC 2369's List-Unsubscribe: the one-click https URL (RFC 8058) first, then the
    mailto some clients only know, each as a header may carry it (:func:`ascii_uri`)."""
    url = ascii_uri(unsubscribe_url)
    if not unsubscribe_mailto:
        return f"<{url}>"
    token = unsubscribe_url.rstrip("/").rpartition("/")[2]
    # Signed tokens need no quoting; this runs once per recipient of every send.
    quoted = token if _URL_SAFE.fullmatch(token) else quote(token, safe="")
    mailto = mailto_address(unsubscribe_mailto)
    return f"<{url}>, <mailto:{mailto}?subject=unsubscribe%20{quoted}>"


def list_unsubscribe_template(envelope: Envelope, public_url: str) -> str:
    """The List-Unsubscribe header of a digest with ``{token}`` where the recipient's manage
    token goes, for building a thousand headers a batch (signed tokens are URL-safe: they need
    no quoting)."""
    return list_unsubscribe(envelope.unsubscribe_mailto, f"{public_url}/unsubscribe/TOKEN").replace(
        "TOKEN", "{token}"
    )


def compose(
    sender: Address,
    to: Address,
    subject: str,
    text: str,
    html: str,
    now: datetime,
    message_id: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message: the text part, then the HTML part. Mailboxes come
    from :func:`mailbox`; their names and the subject are checked again here all the same."""
    message = EmailMessage(policy=email_policy())
    message["From"] = _checked(sender)
    message["To"] = _checked(to)
    message["Subject"] = header_text(subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id or make_msgid(domain=sender.domain)
    message.set_content(text, subtype="plain", charset="utf-8", cte=_transfer_encoding(text))
    message.add_alternative(html, subtype="html", charset="utf-8", cte=_transfer_encoding(html))
    return message


def _transfer_encoding(text: str) -> str | None:
    """7bit (None: the email package's pick) for ASCII text in lines a header-length long;
    quoted-printable for the rest, never base64 (spam filters read base64 text as text
    disguised: SpamAssassin's MIME_BASE64_TEXT) and never 8bit (a DKIM signer or a relay
    without 8BITMIME would have to re-encode it)."""
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= 78:
        return None
    return "quoted-printable"


def build_message(
    envelope: Envelope, personal: Personal, subject: str, text: str, html: str, now: datetime
) -> EmailMessage:
    """One digest email, with the list headers every digest carries."""
    message = compose(
        mailbox(envelope.from_name, envelope.from_email),
        mailbox(personal.name, personal.email),
        subject,
        text,
        html,
        now,
        personal.message_id,
    )
    if envelope.reply_to:
        message["Reply-To"] = envelope.reply_to
    message["List-Id"] = envelope.list_id
    message["List-Unsubscribe"] = list_unsubscribe(
        envelope.unsubscribe_mailto, personal.unsubscribe_url
    )
    message["List-Unsubscribe-Post"] = ONE_CLICK
    if envelope.feedback_id:
        message["Feedback-ID"] = envelope.feedback_id
    return message
