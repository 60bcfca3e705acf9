"""The SMTP transport: one connection per batch, one transaction per recipient."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.errors import MessageError
from email.message import EmailMessage

from digest.config import SmtpConfig
from digest.errors import ProviderDown
from digest.send.batch import OutgoingBatch, messages
from digest.send.message import serialise
from digest.send.transport import MessageWriter
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
        return {**failed, **self.write(built, senders)}

    def write(
        self, items: Sequence[tuple[int, EmailMessage]], senders: Mapping[int, str] | None = None
    ) -> Mapping[int, str]:
        """Send each message over one connection, reconnecting once if the server drops it;
        returns the subscribers whose message was refused (by the server, or because it cannot
        be written safely), with why. The others go out."""
        refused: dict[int, str] = {}
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
                    except smtplib.SMTPServerDisconnected:
                        # Dropped between messages (idle timeout, server restart): the message
                        # was not accepted, so sending it on a new connection is safe.
                        if attempt == 2:
                            raise
                        connection = self._open()
                if problem is not None:
                    refused[subscriber_id] = problem
        except (smtplib.SMTPException, OSError) as err:
            raise ProviderDown(str(err) or type(err).__name__, where=where) from None
        finally:
            if connection is not None:
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    connection.quit()
        return refused


def _transaction(
    connection: smtplib.SMTP, message: EmailMessage, sender: str | None = None
) -> str | None:
    """One message, as the bytes :func:`serialise` makes (what the outbox writes too), from
    ``sender`` (the envelope's return path; default the From address); why this one recipient
    does not get it, or None once the server took it. Errors that concern the server rather
    than the message propagate."""
    try:
        data = serialise(message)
    except (ValueError, MessageError) as err:
        return f"cannot write the message: {err}"
    sender = sender or message["From"].addresses[0].addr_spec
    recipient = message["To"].addresses[0].addr_spec
    try:
        connection.sendmail(sender, [recipient], data)
    except smtplib.SMTPRecipientsRefused as err:
        code, reason = next(iter(err.recipients.values()))
        return f"{code} {reason.decode(errors='replace')}"
    except smtplib.SMTPDataError as err:
        if err.smtp_code < 500:
            raise  # a temporary failure: the send stops and this batch waits for the next
        return f"{err.smtp_code} {_text(err.smtp_error)}"
    return None


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply
