"""Bounds on a request's head (its request line and headers) for `digest serve`: its size,
and the time it may take to arrive.

uvicorn's httptools protocol keeps a request's URL and each header however long it grows
until the head ends: one connection sending an endless header, or an endless URL, held all of
it (200 MB of a header took the server's peak memory from 115 to 525 MB, and nothing ever
answered). A client could also hold a connection for ever by sending a head a byte at a time, or
nothing at all: uvicorn times out only the wait between two requests. A proxy in front would
bound both (nginx: 8 KB a line, 60 s for a head); `digest serve` may face readers without one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_MAX_BYTES = 64 * 1024
"""Far above any browser's or mail provider's head (a few kilobytes, cookies included)."""

HEAD_SECONDS = 30.0
"""From a connection's opening, or a request's first byte, to the end of its head."""

LINGER_SECONDS = 10.0
"""How long a refused connection is read and dropped before it is closed, unless the client
closes first: closing with its bytes unread would reset the connection, and the client would
lose the answer with it (nginx's lingering close does the same)."""

TOO_SLOW = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 30\r\n"
    b"connection: close\r\n\r\n"
    b"the request head came too slow"
)

TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 29\r\n"
    b"connection: close\r\n\r\n"
    b"the request head is too large"
)


class HeadLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering 431 and closing once a head goes past
    ``HEAD_MAX_BYTES``, and 408 when it has not ended ``HEAD_SECONDS`` after the connection
    opened or the request began. Counted are the reads that neither begin nor end a head (a
    read that ends one may carry a body, one that begins it may end the request before), so
    the parser holds the bound and at most two reads (256 KiB each) more."""

    head_limit = HEAD_MAX_BYTES
    head_seconds = HEAD_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = False
        self._head_bytes = 0
        self._refused = False
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._arm_head_deadline()
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._disarm_head_deadline()
        super().on_headers_complete()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.head_seconds, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self.transport.write(TOO_SLOW)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        was_reading = self._reading_head
        super().data_received(data)
        if not (was_reading and self._reading_head) or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > self.head_limit:
            self._refuse()

    def _refuse(self) -> None:
        self.logger.warning("A request head over %d bytes: refused.", self.head_limit)
        self._refused = True
        self.transport.write(TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
