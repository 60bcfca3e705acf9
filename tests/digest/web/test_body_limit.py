"""Every page's bound on what a request may send, over raw sockets: refused unread when the
declared length is over it, counted when no length is declared, and out of the way of the
routes that bound their bodies themselves (the Event Webhook, the subscriber upload) and of
a mail client's one-click unsubscribe however it frames its small body."""

from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from digest.web.body_limit import FORM_MAX_BYTES
from subscribers.models import Status
from subscribers.tokens import Purpose
from tests.conftest import Live
from tests.digest.test_events import signed, signing_key
from tests.digest.web.conftest import EditorSite, allocation_peak, csrf_of, logged_in
from tests.digest.web.test_webhook_limits import connect, head, push_until_answered, status_line

__all__ = ["signing_key"]  # the fixture

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("path", ["/subscribe", "/preferences", "/editor/login"])
def test_a_declared_length_over_the_bound_is_refused_before_a_byte_is_read(
    live: Live, path: str
) -> None:
    """Only the head is sent: the answer comes without the body (a form of a thousand
    1 MB fields, which Starlette would have held whole)."""
    with connect(live) as sock:
        sock.sendall(head(path, live, {**FORM, "Content-Length": str(1000 * 2**20)}))
        assert status_line(sock) == b"HTTP/1.1 413 Request Entity Too Large"


def test_the_refusal_is_a_page_of_the_site(live: Live) -> None:
    answer = httpx.post(
        f"{live.base}/subscribe", content=b"name=" + b"a" * FORM_MAX_BYTES, headers=FORM
    )
    assert answer.status_code == 413
    assert "That is more than this page takes" in answer.text
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_a_body_without_a_length_is_read_only_up_to_the_bound(live: Live) -> None:
    """300 MB offered in chunks: the server stops soon after the bound, holding little."""
    with allocation_peak() as peak, connect(live) as sock:
        sock.sendall(head("/subscribe", live, {**FORM, "Transfer-Encoding": "chunked"}))
        sent = push_until_answered(sock, most=300 * 2**20)
        assert status_line(sock) == b"HTTP/1.1 413 Request Entity Too Large"
    assert sent < 64 * 2**20, sent  # the socket buffers take a few MB before the answer
    assert peak.bytes < 16 * 2**20, peak


def test_a_form_just_under_the_bound_is_read_and_answered_by_the_page(live: Live) -> None:
    page = httpx.get(f"{live.base}/subscribe")
    name = "A" * (FORM_MAX_BYTES - 2_000)
    answer = httpx.post(
        f"{live.base}/subscribe",
        data={"csrf": csrf_of(page), "email": "big@example.com", "name": name},
        cookies=page.cookies,
    )
    assert answer.status_code == 400 and "is too long" in answer.text


def test_a_one_click_unsubscribe_sent_in_chunks_still_unsubscribes(live: Live) -> None:
    """RFC 8058's POST from a mail provider may come without a length; it must never be
    refused for that."""
    subscriber = live.add("reader@example.com", {"backend"})
    token = live.project.signer().sign(Purpose.MANAGE, subscriber)
    body = b"List-Unsubscribe=One-Click"
    with connect(live) as sock:
        sock.sendall(
            head(f"/unsubscribe/{token}", live, {**FORM, "Transfer-Encoding": "chunked"})
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        assert status_line(sock) == b"HTTP/1.1 200 OK"
    assert live.subscriber("reader@example.com").status is Status.UNSUBSCRIBED


def test_the_event_webhook_keeps_its_own_larger_bound(
    live: Live, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    body = b"[" + b" " * (3 * FORM_MAX_BYTES) + b"]"
    answer = httpx.post(
        f"{live.base}/webhooks/sendgrid",
        content=body,
        headers=signed(body, signing_key, live.clock()),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_the_subscriber_upload_keeps_its_own_larger_bound(site: EditorSite) -> None:
    rows = "".join(f"reader{n}@example.com,data\n" for n in range(80_000))
    assert len(rows) > 2 * FORM_MAX_BYTES
    with logged_in(site) as client:
        form = client.get("/editor/subscribers/import")
        answer = client.post(
            "/editor/subscribers/import",
            data={"csrf": csrf_of(form)},
            files={"file": ("big.csv", ("email,topics\n" + rows).encode(), "text/csv")},
            timeout=120,
        )
    assert answer.status_code == 200 and "What importing big.csv would do" in answer.text


def test_requests_without_a_body_are_untouched(live: Live) -> None:
    with connect(live) as sock:
        sock.sendall(b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_line(sock) == b"HTTP/1.1 200 OK"
