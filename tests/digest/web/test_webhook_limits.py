"""The event webhook against bodies too large to hold and timestamps no clock can show, over
raw sockets: what the server reads, and the status line it writes."""

from __future__ import annotations

import base64
import select
import socket
from dataclasses import replace
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import Live
from tests.digest.test_events import signed, signing_key
from tests.digest.web.conftest import allocation_peak

__all__ = ["signing_key"]  # the fixture, shared with the webhook's other tests

LIMIT = 64 * 1024
CHUNK = b"[" + b" " * (64 * 1024 - 2) + b"]"


@pytest.fixture
def small_limit(live: Live, signing_key: ec.EllipticCurvePrivateKey) -> Live:
    config = live.project.config
    settings = config.sending.sendgrid.model_copy(update={"webhook_max_bytes": LIMIT})
    sending = config.sending.model_copy(update={"sendgrid": settings})
    live.project.config = replace(config, file=config.file.model_copy(update={"sending": sending}))
    return live


def connect(live: Live) -> socket.socket:
    parts = urlsplit(live.base)
    return socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10)


def status_line(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    answer = b""
    while b"\r\n" not in answer:
        data = sock.recv(4096)
        if not data:
            break
        answer += data
    return answer.split(b"\r\n", 1)[0]


def push_until_answered(sock: socket.socket, most: int) -> int:
    """Send 64 KiB chunks (chunked encoding) until the server answers or ``most`` bytes are
    out; how many bytes went."""
    sent = 0
    sock.setblocking(False)
    framed = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
    while sent < most:
        readable, writable, _ = select.select([sock], [sock], [], 5)
        if readable:
            break
        if not writable:
            break  # the server stopped reading: its answer is on the way
        try:
            sock.send(framed)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            break
        sent += len(CHUNK)
    sock.setblocking(True)
    return sent


def head(path: str, live: Live, headers: dict[str, str]) -> bytes:
    host = urlsplit(live.base).netloc
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_a_declared_length_over_the_limit_is_refused_unread(small_limit: Live) -> None:
    live = small_limit
    with connect(live) as sock:
        sock.sendall(head("/webhooks/sendgrid", live, {"Content-Length": str(300 * 2**20)}))
        assert status_line(sock) == b"HTTP/1.1 413 Request Entity Too Large"
    with connect(live) as sock:  # a length no integer type holds
        sock.sendall(head("/webhooks/sendgrid", live, {"Content-Length": "9" * 40}))
        assert status_line(sock).split(b" ")[1] in (b"400", b"413")


def test_a_streamed_body_is_read_only_up_to_the_limit(small_limit: Live) -> None:
    """300 MB offered without a length: the server stops after the limit, holding little."""
    live = small_limit
    headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    with allocation_peak() as peak, connect(live) as sock:
        sock.sendall(head("/webhooks/sendgrid", live, headers))
        sent = push_until_answered(sock, most=300 * 2**20)
        assert status_line(sock) == b"HTTP/1.1 413 Request Entity Too Large"
    # The socket buffers take a few MB past the limit before the server's answer is seen.
    assert sent < 64 * 2**20, sent
    assert peak.bytes < 16 * 2**20, peak


def test_a_signed_batch_at_the_limit_still_applies(
    small_limit: Live, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    body = b"[" + b" " * (LIMIT - 2) + b"]"
    answer = httpx.post(
        f"{small_limit.base}/webhooks/sendgrid",
        content=body,
        headers=signed(body, signing_key, small_limit.clock()),
    )
    assert answer.status_code == 200 and answer.json()["ignored"] == 0
    over = body + b" "
    refused = httpx.post(
        f"{small_limit.base}/webhooks/sendgrid",
        content=over,
        headers=signed(over, signing_key, small_limit.clock()),
    )
    assert refused.status_code == 413


@pytest.mark.parametrize(
    "timestamp",
    [
        b"99999999999999999999",  # past datetime's year 9999
        b"9" * 5000,  # past what int() parses by default
        b"\xb2",  # "²" in latin-1: str.isdigit() says yes, int() says no
        "١٧٩٥٤١٧٢٠٠".encode(),  # Arabic-Indic digits, as UTF-8 bytes
        b"-1",
        b"+1795417200",
        b"1795417200.5",
        b"",
    ],
)
def test_an_impossible_timestamp_is_refused_not_a_crash(
    live: Live, signing_key: ec.EllipticCurvePrivateKey, timestamp: bytes
) -> None:
    body = b"[]"
    signature = signing_key.sign(timestamp + body, ec.ECDSA(hashes.SHA256()))
    headers = [
        (b"X-Twilio-Email-Event-Webhook-Signature", base64.b64encode(signature)),
        (b"X-Twilio-Email-Event-Webhook-Timestamp", timestamp),
        (b"Content-Type", b"application/json"),
    ]
    answer = httpx.post(f"{live.base}/webhooks/sendgrid", content=body, headers=headers)
    assert answer.status_code == 403, answer.text
    assert answer.text == "bad or stale signature"
