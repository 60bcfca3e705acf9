"""The SMTP transport: one connection per batch, one transaction per recipient."""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import EmailMessage

from digest.config import SmtpConfig
from digest.errors import Progress, ProviderDown
from digest.send.batch import OutgoingBatch, messages
from digest.send.message import serialise
from digest.send.transport import MessageWriter, with_build_failures
from digest.verp import HEADER as BOUNCE_HEADER
from digest.verp import BounceTokens, return_path


class SmtpTransport(MessageWriter):
    name = "smtp"
    concurrent = False
    refusal = ("refused: ", "mailer")

    def __init__(
        self,
        settings: SmtpConfig,
        password: str | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        bounces: tuple[BounceTokens, str] | None = None,
    ) -> None:
        """``bounces`` (tokens, ``[bounces] address``): each digest goes out from its own
        return path, ``address`` with the delivery's signed token, so that its bounce names
        the delivery (:mod:`digest.verp`)."""
        self.settings = settings
        self.password = password
        self.clock = clock
        self.bounces = bounces

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.ssl:
            return smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout_seconds, context=ssl.create_default_context()
            )
        connection = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
        if s.starttls:
            connection.starttls(context=ssl.create_default_context())
        return connection

    def _open(self) -> smtplib.SMTP:
        connection = self._connect()
        if self.settings.username:
            connection.login(self.settings.username, self.password or "")
        return connection

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        if self.bounces is None:
            return super().deliver(batch)
        tokens, address = self.bounces
        built, failed = messages(batch, self.clock())
        senders: dict[int, str] = {}
        for subscriber_id, message in built:
            token = tokens.token(batch.issue_id, subscriber_id)
            message[BOUNCE_HEADER] = token
            senders[subscriber_id] = return_path(address, token)
        return with_build_failures(failed, lambda: self.write(built, senders))

    def write(
        self, items: Sequence[tuple[int, EmailMessage]], senders: Mapping[int, str] | None = None
    ) -> Mapping[int, str]:
        """Send each message over one connection, reconnecting once if the server drops it
        between messages; returns the subscribers whose message was refused (by the server,
        or because it cannot be written safely), with why. The others go out. When the server
        fails, ProviderDown says which went out before: a transaction that failed before the
        end of its DATA was sent was not handed over; one that failed after, waiting for the
        server's answer, is unknown."""
        refused: dict[int, str] = {}
        taken: list[int] = []
        unknown: list[int] = []
        where = f"smtp {self.settings.host}:{self.settings.port}"
        connection: smtplib.SMTP | None = None
        try:
            connection = self._open()
            for subscriber_id, message in items:
                for attempt in (1, 2):
                    try:
                        problem = _transaction(
                            connection, message, (senders or {}).get(subscriber_id)
                        )
                        break
                    except _Unanswered:
                        unknown.append(subscriber_id)
                        raise
                    except smtplib.SMTPServerDisconnected:
                        # Dropped before the message's end was sent (idle timeout, server
                        # restart): not accepted, so sending it on a new connection is safe.
                        if attempt == 2:
                            raise
                        connection = self._open()
                if problem is None:
                    taken.append(subscriber_id)
                else:
                    refused[subscriber_id] = problem
        except (smtplib.SMTPException, OSError) as err:
            raise ProviderDown(
                str(err) or type(err).__name__,
                where=where,
                progress=Progress(frozenset(taken), refused, frozenset(unknown)),
            ) from None
        finally:
            if connection is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    connection.quit()
        return refused


class _Unanswered(smtplib.SMTPException):
    """The message's end was sent and the server's answer never came: it may have it."""


def _transaction(
    connection: smtplib.SMTP, message: EmailMessage, sender: str | None = None
) -> str | None:
    """One message, as the bytes :func:`serialise` makes (what the outbox writes too), from
    ``sender`` (the envelope's return path; default the From address); why this one recipient
    does not get it, or None once the server took it. Errors that concern the server rather
    than the message propagate; :class:`_Unanswered` once the message was sent whole and its
    answer did not come.

    The steps of ``sendmail``, taken one by one so that the moment the message is complete
    (the dot that ends DATA) is known."""
    try:
        data = serialise(message)
    except (ValueError, MessageError) as err:
        return f"cannot write the message: {err}"
    sender = sender or message["From"].addresses[0].addr_spec
    recipient = message["To"].addresses[0].addr_spec
    connection.ehlo_or_helo_if_needed()
    code, reply = connection.mail(sender)
    if code != 250:
        _reset(connection)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    code, reply = connection.rcpt(recipient)
    if code not in (250, 251):
        _reset(connection)
        if code < 500:  # a temporary refusal: the send stops, the message waits
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        return f"{code} {_text(reply)}"
    code, reply = connection.docmd("DATA")
    if code != 354:
        _reset(connection)
        return _data_refused(code, reply)
    connection.send(_dot_stuffed(data))
    try:
        code, reply = connection.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as err:
        raise _Unanswered(f"no answer after the message was sent: {err}") from None
    if code != 250:
        return _data_refused(code, reply)
    return None


def _data_refused(code: int, reply: bytes) -> str:
    """A refusal of the message: for good (5xx, this recipient fails), or a temporary failure,
    which stops the send (the message waits for the next one)."""
    if code < 500:
        raise smtplib.SMTPDataError(code, reply)
    return f"{code} {_text(reply)}"


def _dot_stuffed(data: bytes) -> bytes:
    """DATA's body: lines starting with a dot get another, and the ending line of one dot."""
    stuffed = re.sub(rb"(?m)^\.", b"..", data)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def _reset(connection: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        connection.rset()


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply
