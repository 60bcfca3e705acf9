"""Building one recipient's MIME message from a variant. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import quote


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
    return f"{digest_name} <{digest_slug}.{domain}>"


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
    """A multipart/alternative message: the text part, then the HTML part."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
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
        Address(envelope.from_name, addr_spec=envelope.from_email),
        Address(personal.name, addr_spec=personal.email),
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
