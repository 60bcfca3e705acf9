"""`digest serve`'s bound on a request's head, over raw sockets against the server as it
runs (uvicorn with :class:`~digest.web.head_limit.HeadLimitedProtocol`): an endless header or
URL is answered 431 and the connection closed, holding little; real heads, keep-alive and
a head sent with its body in one write are untouched."""

from __future__ import annotations

import select
import socket

import pytest

from digest.web.head_limit import HEAD_MAX_BYTES, HeadLimitedProtocol
from tests.conftest import Live
from tests.digest.web.conftest import allocation_peak
from tests.digest.web.test_webhook_limits import connect, status_line


def flood(sock: socket.socket, start: bytes, most: int) -> int:
    """Send ``start`` then 64 KiB of "a" at a time until the server answers or closes, or
    ``most`` bytes are out; how many bytes went."""
    sock.sendall(start)
    sent = 0
    sock.setblocking(False)
    block = b"a" * 65536
    while sent < most:
        readable, writable, _ = select.select([sock], [sock], [], 5)
        if readable or not writable:
            break
        try:
            sent += sock.send(block)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            break
    sock.setblocking(True)
    return sent


@pytest.mark.parametrize(
    "start",
    [b"GET /subscribe HTTP/1.1\r\nHost: x\r\nX-Endless: ", b"GET /subscribe?q="],
    ids=["header", "url"],
)
def test_an_endless_head_is_refused_holding_little(live: Live, start: bytes) -> None:
    with allocation_peak() as peak, connect(live) as sock:
        sent = flood(sock, start, most=200 * 2**20)
        assert status_line(sock) == b"HTTP/1.1 431 Request Header Fields Too Large"
        sock.settimeout(10)
        while sock.recv(65536):  # then the server closes the connection
            pass
    assert sent < 16 * 2**20, sent  # the socket buffers take a few MB before the answer
    assert peak.bytes < 8 * 2**20, peak


def test_a_head_with_a_large_cookie_is_answered(live: Live) -> None:
    cookie = "a=" + "b" * (HEAD_MAX_BYTES // 2)
    with connect(live) as sock:
        sock.sendall(f"GET /subscribe HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
        assert status_line(sock) == b"HTTP/1.1 200 OK"


def test_a_head_and_a_large_body_in_one_write_count_only_the_head(live: Live) -> None:
    """The first reads carry the head and much more than ``HEAD_MAX_BYTES`` of body: the
    form is read and answered by its page (a 403: no CSRF cookie), not refused as a head."""
    body = b"name=" + b"a" * (4 * HEAD_MAX_BYTES)
    head = (
        b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with connect(live) as sock:
        sock.sendall(head + body)
        assert status_line(sock) == b"HTTP/1.1 403 Forbidden"


def test_requests_kept_alive_and_pipelined_are_each_answered(live: Live) -> None:
    one = b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(live) as sock:
        sock.sendall(one * 3)
        sock.settimeout(10)
        answers = b""
        while answers.count(b"HTTP/1.1 200 OK") < 3:
            data = sock.recv(65536)
            assert data, answers[:200]
            answers += data


@pytest.mark.parametrize(
    "start", [b"GET /subscribe HTTP/1.1\r\nHost: x\r\nX-Slow: a", b""], ids=["trickle", "silent"]
)
def test_a_head_that_never_ends_is_answered_408_and_closed(
    live: Live, monkeypatch: pytest.MonkeyPatch, start: bytes
) -> None:
    """A client holding a connection with part of a head, or with nothing: without the
    deadline it held it for ever (uvicorn times out only the wait between requests). The
    deadline is shortened here; the test waits for the server, whenever it answers."""
    monkeypatch.setattr(HeadLimitedProtocol, "head_seconds", 0.2)
    with connect(live) as sock:
        sock.sendall(start)
        sock.settimeout(60)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b"\r\n\r\nthe request head came too slow")


def test_a_head_in_pieces_within_the_deadline_is_answered(live: Live) -> None:
    with connect(live) as sock:
        for piece in (b"GET /subscr", b"ibe HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            sock.sendall(piece)
        assert status_line(sock) == b"HTTP/1.1 200 OK"
