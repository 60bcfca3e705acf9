"""bounces: what comes back to an SMTP send's return path → which delivery it is about and
what happened to it (a permanent failure, a temporary one, a complaint).

A message of the bounce mailbox is read as:

* an ARF feedback report (RFC 5965: ``multipart/report; report-type=feedback-report``):
  a complaint, unless its Feedback-Type says ``not-spam``;
* else a delivery failure, by GNU Mailman's ``flufl.bounce`` detectors: the RFC 3464 DSN and
  the odd formats of Postfix, Exim, qmail, Exchange, Yahoo, … (permanent and temporary);
* else nothing we act on (an auto-reply, a stray message).

Who it is about comes only from our signed token (:mod:`digest.verp`): in the return path the
report was sent to, or in the ``X-Digest-Bounce`` header of the quoted original. The addresses
a report names decide nothing about whom to suppress: anyone can write a report naming any
address. A message with no valid token, or with tokens of two deliveries, is left alone.

The mailbox is an adapter handed in (:class:`Mailbox`); :class:`ImapMailbox` is the IMAP one.
Applying what was read is the events stage's (the webhook's rules): the use case composes them.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import imaplib
import re
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum
from typing import Protocol

from email_validator import EmailNotValidError, validate_email
from flufl.bounce import all_failures

from digest.errors import DigestError
from digest.verp import HEADER, TOKEN_PATTERN, BounceTokens

PROCESSED = "$DigestProcessed"
"""The IMAP keyword set on each message once read, so the next fetch passes it over."""

_IN_ADDRESS = re.compile(rb"\+(" + TOKEN_PATTERN.encode() + rb")@", re.I)
_IN_HEADER = re.compile(
    rb"^" + HEADER.encode() + rb":[ \t]*(" + TOKEN_PATTERN.encode() + rb")", re.I | re.M
)
_NOT_COMPLAINTS = {"not-spam"}


class Kind(StrEnum):
    BOUNCE = "bounce"
    """A permanent failure: the address is bad."""
    DEFERRED = "deferred"
    """A temporary failure: the address is not known to be bad."""
    COMPLAINT = "spamreport"
    """The reader marked the message as spam."""
    NONE = "none"
    """Not a report we act on."""


@dataclass(frozen=True)
class Report:
    """What one message of the bounce mailbox says."""

    kind: Kind
    addresses: frozenset[str]
    """The addresses the report names as failed or complaining (for the record only)."""
    tokens: frozenset[str]
    """Every bounce token found in it, valid or not."""
    digest: str
    """Identifies the message (SHA-256 of its bytes): it is applied once."""


def _valid(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _feedback(message: Message) -> tuple[Kind, frozenset[str]] | None:
    """An ARF report's kind and the address it names; None when it is not one."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "")).lower() != "feedback-report":
        return None
    for part in message.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = _feedback_fields(part)
        kind = fields.get("feedback-type", "abuse").lower()
        named = frozenset(
            a for a in (fields.get("original-rcpt-to", "").strip("<> "),) if a and _valid(a)
        )
        return (Kind.NONE if kind in _NOT_COMPLAINTS else Kind.COMPLAINT), named
    return None


def _feedback_fields(part: Message) -> dict[str, str]:
    """The machine-readable part's fields: parsed by the email package as sub-messages (one
    block of header fields), or as text when it came as such."""
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else [email.message_from_string(str(payload))]
    fields: dict[str, str] = {}
    for block in blocks:
        if isinstance(block, Message):
            for name, value in block.items():
                fields.setdefault(name.lower(), str(value).strip())
    return fields


def _tokens(raw: bytes, message: Message) -> frozenset[str]:
    found = {m.decode().lower() for m in _IN_ADDRESS.findall(raw)}
    found |= {m.decode().lower() for m in _IN_HEADER.findall(raw)}
    for part in message.walk():  # quoted originals that came encoded (base64, QP)
        for value in part.get_all(HEADER, []):
            found |= {m.lower() for m in re.findall(TOKEN_PATTERN, str(value), re.I)}
        if not part.is_multipart():
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                found |= {m.decode().lower() for m in _IN_ADDRESS.findall(body)}
                found |= {m.decode().lower() for m in _IN_HEADER.findall(body)}
    return frozenset(found)


def read_report(raw: bytes) -> Report:
    """What the message ``raw`` (as the mailbox holds it) reports. Never raises for a
    malformed message: what cannot be read is :attr:`Kind.NONE`."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    digest = hashlib.sha256(raw).hexdigest()
    tokens = _tokens(raw, message)
    feedback = _feedback(message)
    if feedback is not None:
        return Report(feedback[0], feedback[1], tokens, digest)
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector choking on a malformed message: not a report we can read
        return Report(Kind.NONE, frozenset(), tokens, digest)
    named_permanent = frozenset(a for a in map(_text, permanent) if _valid(a))
    if named_permanent:
        return Report(Kind.BOUNCE, named_permanent, tokens, digest)
    named_temporary = frozenset(a for a in map(_text, temporary) if _valid(a))
    if named_temporary:
        return Report(Kind.DEFERRED, named_temporary, tokens, digest)
    return Report(Kind.NONE, frozenset(), tokens, digest)


def delivery_of(report: Report, tokens: BounceTokens) -> tuple[int, int] | None:
    """(issue id, subscriber id) the report is about: the one delivery its valid tokens name,
    else None (no valid token, or tokens of two deliveries: believe neither)."""
    named = {found for t in report.tokens if (found := tokens.read(t)) is not None}
    return next(iter(named)) if len(named) == 1 else None


# the mailbox -------------------------------------------------------------------------------


class Mailbox(Protocol):
    """Where bounces arrive. Messages are listed until marked processed."""

    def unprocessed(self) -> Iterator[tuple[str, bytes]]:
        """(id, raw bytes) of each message not marked processed yet."""
        ...

    def mark_processed(self, message_id: str) -> None: ...


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    user: str
    password: str
    tls: str
    folder: str
    timeout_seconds: float
    context: ssl.SSLContext | None = None
    """TLS context (tests pass one trusting their own certificate); default: the system's."""


class ImapMailbox:
    """An IMAP folder (imaplib). Processed messages get the keyword :data:`PROCESSED`; they
    stay in the folder for whoever wants to read them."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self._imap: imaplib.IMAP4 | None = None

    def __enter__(self) -> ImapMailbox:
        s = self.settings
        where = f"imap {s.host}:{s.port}"
        context = s.context or ssl.create_default_context()
        try:
            if s.tls == "ssl":
                imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.host, s.port, ssl_context=context, timeout=s.timeout_seconds
                )
            else:
                imap = imaplib.IMAP4(s.host, s.port, timeout=s.timeout_seconds)
                if s.tls == "starttls":
                    imap.starttls(context)
        except (OSError, imaplib.IMAP4.error) as err:
            raise DigestError(f"cannot connect: {err}", where=where) from None
        try:
            imap.login(s.user, s.password)
        except imaplib.IMAP4.error as err:
            imap.shutdown()
            raise DigestError(
                f"cannot log in as {s.user}: {_text(_reason(err))}", where=where
            ) from None
        status, answer = imap.select(_quoted(s.folder))
        if status != "OK":
            imap.logout()
            raise DigestError(f"no folder {s.folder!r}: {_text(answer[0] or b'')}", where=where)
        self._imap = imap
        return self

    def __exit__(self, *exc: object) -> None:
        if self._imap is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                self._imap.logout()
            self._imap = None

    @property
    def imap(self) -> imaplib.IMAP4:
        if self._imap is None:
            raise DigestError("the bounce mailbox is not open", where="bounces")
        return self._imap

    def unprocessed(self) -> Iterator[tuple[str, bytes]]:
        status, found = self.imap.uid("SEARCH", "UNKEYWORD", PROCESSED)
        self._check(status, found, "search")
        for uid in found[0].split() if found and found[0] else []:
            status, fetched = self.imap.uid("FETCH", uid, "(BODY.PEEK[])")
            self._check(status, fetched, "fetch")
            raw = next((part[1] for part in fetched if isinstance(part, tuple)), None)
            if raw is not None:
                yield uid.decode(), raw

    def mark_processed(self, message_id: str) -> None:
        status, answer = self.imap.uid("STORE", message_id, "+FLAGS", f"({PROCESSED})")
        self._check(status, answer, "flag")

    def _check(self, status: str, answer: Sequence[object], what: str) -> None:
        if status != "OK":
            s = self.settings
            detail = _text(answer[0]) if answer and isinstance(answer[0], bytes | str) else status
            raise DigestError(f"{what} failed: {detail}", where=f"imap {s.host}:{s.port}")


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason(err: BaseException) -> bytes | str:
    return err.args[0] if err.args and isinstance(err.args[0], bytes | str) else str(err)
