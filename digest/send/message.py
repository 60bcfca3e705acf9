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
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, make_msgid
from functools import cache
from typing import Any
from urllib.parse import quote

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


@cache
def email_policy() -> EmailPolicy[EmailMessage]:
    """The policy of every message built here: the standard one, with the check of the
    headers it writes on (it is on by default where it exists; here it is on whatever the
    default becomes)."""
    require_header_verification()
    return email_policies.default.clone(verify_generated_headers=True)


def serialise(message: EmailMessage) -> bytes:
    """The bytes that leave the process (an ``.eml`` file, an SMTP transaction's data), with
    CRLF line ends. Raises ValueError (``email.errors.HeaderWriteError`` among others) for a
    message whose headers cannot be written safely."""
    # Lines up to RFC 5322's 998: at 78, a header holding a URL longer than the line (every
    # List-Unsubscribe) is written as RFC 2047 encoded words, which no mail program decodes in
    # a URL header, so one-click unsubscribe found no URL in it.
    return message.as_bytes(policy=email_policy().clone(linesep="\r\n", max_line_length=998))


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


def message_id(issue_id: int, subscriber_id: int, from_email: str) -> str:
    """Deterministic, so a re-send of the same delivery carries the same id (dedupe downstream)."""
    domain = from_email.rpartition("@")[2]
    return f"<digest.{issue_id}.{subscriber_id}@{domain}>"


_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]*")


def list_unsubscribe(envelope: Envelope, unsubscribe_url: str) -> str:
    if not envelope.unsubscribe_mailto:
        return f"<{unsubscribe_url}>"
    token = unsubscribe_url.rstrip("/").rpartition("/")[2]
    # Signed tokens need no quoting; this runs once per recipient of every send.
    quoted = token if _URL_SAFE.fullmatch(token) else quote(token, safe="")
    return (
        f"<{unsubscribe_url}>, "
        f"<mailto:{envelope.unsubscribe_mailto}?subject=unsubscribe%20{quoted}>"
    )


def list_unsubscribe_template(envelope: Envelope, public_url: str) -> str:
    """The List-Unsubscribe header of a digest with ``{token}`` where the recipient's manage
    token goes, for building a thousand headers a batch (signed tokens are URL-safe: they need
    no quoting)."""
    return list_unsubscribe(envelope, f"{public_url}/unsubscribe/TOKEN").replace("TOKEN", "{token}")


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
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message


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
    message["List-Unsubscribe"] = list_unsubscribe(envelope, personal.unsubscribe_url)
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message
