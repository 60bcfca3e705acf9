"""The SendGrid transport: one v3 Mail Send request per batch, personal values as substitutions.

:func:`build_payload` is pure (a batch in, plain dicts out) and is what the tests validate
against SendGrid's official request schema. :class:`SendGridTransport` posts it with the
request the ``sendgrid`` client defines, with a timeout, bounded retries for 429/5xx/network
errors (honouring Retry-After), and never lets the API key reach an error message.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.message import EmailMessage
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
from sendgrid import SendGridAPIClient

from digest.errors import BatchRejected, DeliveryUnknown, Progress, ProviderDown
from digest.personalize import recipient_values
from digest.send.batch import OutgoingBatch, Recipient
from digest.send.message import (
    ONE_CLICK,
    Envelope,
    header_text,
    list_unsubscribe_template,
    message_id,
)
from subscribers.names import usable_name

MAX_PAYLOAD_BYTES = 30 * 1024 * 1024
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
MAX_SUBSTITUTION_BYTES = 10_000
MAX_CUSTOM_ARGS_BYTES = 10_000


@dataclass(frozen=True)
class SendGridOptions:
    asm_group_id: int | None = None
    sandbox_mode: bool = False


def build_payload(batch: OutgoingBatch, options: SendGridOptions) -> dict[str, Any]:
    """The request body for one batch: the variant once, a personalization per recipient.

    Runs once per recipient of every send, so the per-recipient part only fills in values."""
    envelope = batch.envelope
    variant = batch.variant
    digest, issue_id = batch.digest, str(batch.issue_id)
    # The header split at its tokens (the https URL's and the mailto's), joined per recipient
    # (a third faster than format()).
    unsubscribe = list_unsubscribe_template(envelope, batch.public_url).split("{token}")
    key, from_email, number = envelope.message_key, envelope.from_email, batch.issue_id
    values = recipient_values
    usable = usable_name  # a name the rule refuses goes without: SendGrid writes the header
    personalizations = [
        {
            "to": [{"email": email, "name": name} if usable(name) else {"email": email}],
            "substitutions": values(first_name, email, token),
            "headers": {
                "List-Unsubscribe": token.join(unsubscribe),
                "Message-ID": message_id(number, id_, from_email, key),
            },
            "custom_args": {"digest": digest, "issue_id": issue_id, "subscriber_id": str(id_)},
        }
        for id_, email, name, first_name, token in batch.recipients
    ]
    sender: dict[str, str] = {"email": envelope.from_email}
    if usable_name(envelope.from_name):
        sender["name"] = envelope.from_name
    payload: dict[str, Any] = {
        "from": sender,
        "subject": header_text(variant.bound_subject),
        "content": [
            {"type": "text/plain", "value": variant.bound_text},
            {"type": "text/html", "value": variant.bound_html},
        ],
        "personalizations": personalizations,
        "headers": _mail_headers(envelope),
        # Mail-level custom_args is a string in SendGrid's schema; the ids go per recipient.
        "categories": [batch.digest, f"{batch.digest}-issue-{batch.issue_number}"],
    }
    if envelope.reply_to:
        payload["reply_to"] = {"email": envelope.reply_to}
    if options.asm_group_id is not None:
        payload["asm"] = {"group_id": options.asm_group_id}
    if options.sandbox_mode:
        payload["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return payload


def _mail_headers(envelope: Envelope) -> dict[str, str]:
    headers = {"List-Unsubscribe-Post": ONE_CLICK, "List-Id": envelope.list_id}
    if envelope.feedback_id:
        headers["Feedback-ID"] = envelope.feedback_id
    return headers


def payload_problems(payload: Mapping[str, Any], size: int | None = None) -> list[str]:
    """SendGrid's documented limits that a schema cannot express (``size``: the encoded
    payload's bytes, when known)."""
    problems = []
    people = payload.get("personalizations", [])
    mail_args = payload.get("custom_args", {})
    if len(people) > 1000:
        problems.append(f"{len(people)} personalizations (at most 1000)")
    if (
        sum(len(p.get("to", [])) + len(p.get("cc", [])) + len(p.get("bcc", [])) for p in people)
        > 1000
    ):
        problems.append("more than 1000 recipients")
    for number, person in enumerate(people):
        # Characters first (builtins, no encoding): a character is at most 4 bytes in UTF-8
        # and 6 in JSON, so most personalizations are proven small without encoding anything.
        substitutions = person.get("substitutions", {})
        if 4 * _chars(substitutions) > MAX_SUBSTITUTION_BYTES:
            used = _utf8_size(substitutions)
            if used > MAX_SUBSTITUTION_BYTES:
                problems.append(f"personalization {number}: substitutions of {used} bytes")
        args = person.get("custom_args", {})
        if isinstance(mail_args, Mapping) and mail_args:
            args = {**mail_args, **args}
        if 24 * _chars(args) + 8 * len(args) + 2 >= MAX_CUSTOM_ARGS_BYTES and (
            len(orjson.dumps(args)) >= MAX_CUSTOM_ARGS_BYTES
        ):
            problems.append(f"personalization {number}: custom_args too large")
    if size is None:
        size = len(orjson.dumps(payload))
    if size >= MAX_PAYLOAD_BYTES:
        problems.append(f"payload of {size} bytes (under 30 MB)")
    return problems


def _chars(values: Mapping[str, str]) -> int:
    return sum(map(len, values)) + sum(map(len, values.values()))


def _utf8_size(values: Mapping[str, str]) -> int:
    """Bytes of the keys and values in UTF-8 (ASCII text, the usual case, is not encoded)."""
    return sum(
        (len(k) if k.isascii() else len(k.encode())) + (len(v) if v.isascii() else len(v.encode()))
        for k, v in values.items()
    )


def personal_parts_fit(recipients: Sequence[Recipient], digest: str, issue_id: int) -> bool:
    """Whether no personalization of these recipients can reach a per-personalization limit,
    judged once from the longest values: a character is at most 4 bytes in UTF-8, and
    html.escape makes at most 6 ASCII characters of one. Checking each personalization, as
    :func:`payload_problems` does, cost as much as building it."""
    if not recipients or len(recipients) > 1000:
        return False
    names = max(map(len, (r.first_name for r in recipients)))
    emails = max(map(len, (r.email for r in recipients)))
    tokens = max(map(len, (r.token for r in recipients)))
    substitutions = _SUBSTITUTION_KEYS + 10 * names + 10 * emails + 4 * tokens
    largest_id = max(r.subscriber_id for r in recipients)
    custom_args = 80 + 6 * (len(digest) + len(str(issue_id)) + len(str(largest_id)))
    return substitutions <= MAX_SUBSTITUTION_BYTES and custom_args < MAX_CUSTOM_ARGS_BYTES


_SUBSTITUTION_KEYS = sum(map(len, recipient_values("", "", "")))


class Part(NamedTuple):
    """One request body of a batch, and the recipients it is for."""

    recipients: Sequence[Recipient]
    body: bytes

    @property
    def subscribers(self) -> set[int]:
        return {r.subscriber_id for r in self.recipients}


def encode_to_fit(
    batch: OutgoingBatch, options: SendGridOptions, limit: int = MAX_PAYLOAD_BYTES
) -> list[Part]:
    """Request bodies for the batch, encoded once, halved until each one is within SendGrid's
    limits (``limit``: the bytes a body must stay under)."""
    payload = build_payload(batch, options)
    body = orjson.dumps(payload)
    whole = [Part(batch.recipients, body)]
    small = len(body) < limit
    if small and personal_parts_fit(batch.recipients, batch.digest, batch.issue_id):
        return whole
    if len(batch.recipients) <= 1 or (small and not payload_problems(payload, len(body))):
        return whole
    half = len(batch.recipients) // 2
    first = replace(batch, recipients=batch.recipients[:half])
    second = replace(batch, recipients=batch.recipients[half:])
    return encode_to_fit(first, options, limit) + encode_to_fit(second, options, limit)


def single_message_payload(message: EmailMessage) -> dict[str, Any]:
    """A one-off message (a confirmation request) as a Mail Send body."""
    sender = message["From"].addresses[0]
    to = message["To"].addresses[0]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    content = [
        {"type": part.get_content_type(), "value": part.get_content()}
        for part in (text, html)
        if part is not None
    ]
    return {
        "from": {"email": sender.addr_spec, "name": sender.display_name or sender.addr_spec},
        "personalizations": [{"to": [{"email": to.addr_spec}]}],
        "subject": str(message["Subject"]),
        "content": content,
    }


class SendGridTransport:
    """Thread-safe: each thread keeps its own connection, so several requests can be in
    flight.

    The official client defines the request (the API's URL, the authorization and user-agent
    headers); the requests go over a kept-alive connection per thread. Through the client
    itself, each request opened a new connection and, for a debug line nobody reads, first
    formatted the whole body, about 2 ms for a batch of a thousand (and the client logs that
    body, key and all, when DEBUG is on)."""

    name = "sendgrid"
    concurrent = True

    def __init__(
        self,
        api_key: str,
        host: str,
        options: SendGridOptions,
        *,
        timeout_seconds: float = 30.0,
        retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        client = SendGridAPIClient(api_key, host=host)
        self._headers = {**client.client.request_headers, **JSON_HEADERS}
        url = urlsplit(host)
        self._https = url.scheme == "https"
        self._netloc = url.netloc
        self._path = f"{url.path.rstrip('/')}/v3/mail/send"
        self._connections = threading.local()
        self.host = host
        self.options = options
        self.timeout = timeout_seconds
        self.retries = retries
        self.sleep = sleep
        self.max_body_bytes = MAX_PAYLOAD_BYTES
        """A batch whose body would reach this is sent in parts."""

    def deliver(self, batch: OutgoingBatch) -> Mapping[int, str]:
        """One request, or one per part of a batch SendGrid takes only split. The parts are
        separate requests: once one was taken, an error in a later one carries what was
        (``progress``), so that the taken part is never sent again nor recorded as failed."""
        parts = encode_to_fit(batch, self.options, self.max_body_bytes)
        if len(parts) == 1:
            self.post(parts[0].body)
            return {}
        taken: set[int] = set()
        refused: dict[int, str] = {}
        unknown: set[int] = set()
        unanswered: DeliveryUnknown | None = None
        for part in parts:
            try:
                self.post(part.body)
            except BatchRejected as err:
                refused.update(dict.fromkeys(part.subscribers, str(err)))
                continue
            except DeliveryUnknown as err:
                unknown |= part.subscribers
                unanswered = err
                continue
            except ProviderDown as err:
                err.progress = Progress(frozenset(taken), refused, frozenset(unknown))
                raise
            taken |= part.subscribers
        if unanswered is not None:
            if taken or refused:
                unanswered.progress = Progress(frozenset(taken), refused, frozenset(unknown))
            raise unanswered
        return refused

    def send_message(self, message: EmailMessage) -> None:
        self.post(orjson.dumps(single_message_payload(message)))

    def post(self, body: bytes) -> None:
        """POST /v3/mail/send with bounded, jittered retries; raises on a final failure.

        The body arrives encoded (orjson, once, also measuring it against the size limit)."""
        where = f"sendgrid {self.host}"
        for attempt in range(self.retries + 1):
            try:
                status, answer, retry_after = self._exchange(body)
            except _NotAnswered as err:
                # Refused, reset or closed before answering: nothing was accepted; retry.
                if attempt == self.retries:
                    raise ProviderDown(
                        f"network error after {attempt + 1} tries: {err}", where=where
                    ) from None
                self.sleep(_backoff(attempt, None))
                continue
            if 200 <= status < 300:
                return
            reason = _error_text(answer)
            if status in (401, 403):
                raise ProviderDown(
                    f"HTTP {status}: the API key was refused ({reason}); check "
                    "SENDGRID_API_KEY and its Mail Send permission",
                    where=where,
                )
            if status != 429 and status < 500:
                raise BatchRejected(f"HTTP {status}: {reason}", where=where)
            if attempt == self.retries:
                raise ProviderDown(
                    f"HTTP {status} after {attempt + 1} tries: {reason}", where=where
                )
            self.sleep(_backoff(attempt, _seconds(retry_after)))

    def _exchange(self, body: bytes) -> tuple[int, bytes, str | None]:
        """One request on this thread's connection: (status, answer, Retry-After)."""
        connection = self._connection()
        try:
            if connection.sock is None:
                connection.connect()
            connection.request("POST", self._path, body, self._headers)
        except OSError as err:  # a timeout too: the request did not get through
            connection.close()
            raise _NotAnswered(type(err).__name__) from None
        try:
            response = connection.getresponse()
            answer = response.read()
        except TimeoutError:
            connection.close()
            # Sent, unanswered: a retry could deliver the batch twice.
            raise DeliveryUnknown(
                f"no answer within {self.timeout:g} s; the batch may have been accepted",
                where=f"sendgrid {self.host}",
            ) from None
        except (OSError, http.client.HTTPException) as err:
            connection.close()
            raise _NotAnswered(type(err).__name__) from None
        if response.will_close:
            connection.close()
        return response.status, answer, response.getheader("Retry-After")

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(
            self._connections, "connection", None
        )
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._netloc, timeout=self.timeout)
            self._connections.connection = connection
        return connection


class _NotAnswered(Exception):
    """The connection failed before an answer came (refused, reset, closed)."""


def _backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(60.0, retry_after)
    return min(30.0, (2.0**attempt) * (0.5 + random.random() / 2))


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_text(body: bytes) -> str:
    """SendGrid's own messages from the error body; never the request (it holds the key)."""
    try:
        document = json.loads(body)
        messages = [e.get("message", "") for e in document.get("errors", [])]
        return "; ".join(m for m in messages if m) or str(document)[:300]
    except (ValueError, AttributeError, TypeError):
        return body.decode("utf-8", "replace")[:300]
