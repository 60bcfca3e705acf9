"""The subscriber pages over real HTTP: one-click, tokens, CSRF, rate limit, no enumeration."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta

import httpx
import pytest

from subscribers.models import Status
from subscribers.tokens import InvalidToken, Purpose, TokenSigner
from tests.conftest import Live


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    return match.group(1)


def test_one_click_post_unsubscribes_and_a_get_does_not(live: Live) -> None:
    subscriber = live.add("reader@example.com", {"backend"})
    token = live.project.signer().sign(Purpose.MANAGE, subscriber)
    with live.client() as client:
        shown = client.get(f"/unsubscribe/{token}")
        assert shown.status_code == 200 and "Unsubscribe?" in shown.text
        assert shown.headers["Referrer-Policy"] == "no-referrer"
        assert live.subscriber("reader@example.com").status is Status.ACTIVE
    # A mail client's one-click POST: no cookie, no page, acts at once.
    answer = httpx.post(
        f"{live.base}/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert live.subscriber("reader@example.com").status is Status.UNSUBSCRIBED


def test_tampered_wrong_purpose_and_expired_tokens_are_refused_kindly(live: Live) -> None:
    subscriber = live.add("reader@example.com", {"backend"})
    signer = live.project.signer()
    manage = signer.sign(Purpose.MANAGE, subscriber)
    tampered = manage[:-3] + ("AAA" if not manage.endswith("AAA") else "BBB")
    preferences = manage
    confirm = signer.sign(Purpose.CONFIRM, subscriber, topics=["backend"])
    with live.client() as client:
        for url in (
            f"/unsubscribe/{tampered}",
            f"/unsubscribe/{confirm}",
            f"/preferences/{confirm}",
            f"/confirm/{manage}",
        ):
            page = client.get(url)
            assert page.status_code == 400 and "This link does not work" in page.text, url
        one_click = client.post(f"/unsubscribe/{tampered}", data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 400
        assert client.get(f"/confirm/{confirm}").status_code == 200
        live.clock.now += timedelta(days=8)
        expired = client.get(f"/confirm/{confirm}")
        assert expired.status_code == 400 and "This link has expired" in expired.text
        assert client.get(f"/preferences/{preferences}").status_code == 200  # still valid
        live.clock.now += timedelta(days=400)
        assert "expired" in client.get(f"/preferences/{preferences}").text
    assert live.subscriber("reader@example.com").status is Status.ACTIVE


def test_forms_without_a_matching_csrf_field_change_nothing(live: Live) -> None:
    subscriber = live.add("reader@example.com", {"backend"})
    token = live.project.signer().sign(Purpose.MANAGE, subscriber)
    with live.client() as client:
        page = client.get(f"/preferences/{token}")
        field = csrf_of(page)
        forged = client.post(f"/preferences/{token}", data={"action": "save", "topics": ["data"]})
        assert forged.status_code == 403
        wrong = client.post(
            f"/preferences/{token}", data={"action": "save", "topics": ["data"], "csrf": "0" * 64}
        )
        assert wrong.status_code == 403
    with httpx.Client(base_url=live.base) as stranger:  # another browser: no cookie
        cross_site = stranger.post(
            f"/preferences/{token}", data={"action": "save", "topics": ["data"], "csrf": field}
        )
        assert cross_site.status_code == 403
    assert live.subscriber("reader@example.com").topics == {"backend"}
    with live.client() as client:
        client.get(f"/preferences/{token}")
        cookie_field = csrf_of(client.get(f"/preferences/{token}"))
        saved = client.post(
            f"/preferences/{token}",
            data={"action": "save", "topics": ["data"], "csrf": cookie_field},
        )
        assert saved.status_code == 303
    assert live.subscriber("reader@example.com").topics == {"data"}


def sign_up(client: httpx.Client, email: str) -> httpx.Response:
    field = csrf_of(client.get("/subscribe"))
    return client.post(
        "/subscribe", data={"csrf": field, "email": email, "name": "N", "topics": ["backend"]}
    )


def test_the_same_answer_for_known_unknown_and_suppressed_addresses(live: Live) -> None:
    live.add("active@example.com", {"data"})
    live.add("bounced@example.com", {"data"}, Status.BOUNCED)
    with live.client() as client:
        answers = [
            sign_up(client, e)
            for e in ("new@example.com", "active@example.com", "bounced@example.com")
        ]
        pages = [client.get(a.headers["location"]) for a in answers]
    live.settle()
    assert {(a.status_code, a.headers["location"]) for a in answers} == {
        (303, "/subscribe/check-your-email")
    }
    assert len({p.text for p in pages}) == 1
    sent = sorted(p.name.split("-")[0] for p in live.outbox.glob("*.eml"))
    assert sent == ["active@example.com", "new@example.com"]  # a bounced address gets no mail
    assert live.subscriber("new@example.com").status is Status.PENDING
    assert live.subscriber("active@example.com").topics == {"data"}  # unchanged until confirmed


def test_sign_ups_are_rate_limited_per_client(live: Live) -> None:
    with live.client() as client:
        answers = [sign_up(client, f"r{i}@example.com").status_code for i in range(6)]
        assert answers == [303] * 5 + [429]
        live.clock.now += timedelta(minutes=11)
        assert sign_up(client, "later@example.com").status_code == 303


def test_behind_a_trusted_proxy_each_reader_has_their_own_limit(live: Live) -> None:
    """The test client connects from 127.0.0.1, the proxy uvicorn trusts by default (as
    `digest serve --forwarded-allow-ips` does): X-Forwarded-For names the reader."""
    for reader in ("203.0.113.7", "198.51.100.9"):
        with httpx.Client(
            base_url=live.base, headers={"X-Forwarded-For": reader}, timeout=10
        ) as client:
            answers = [sign_up(client, f"{reader}-{i}@example.com").status_code for i in range(6)]
            assert answers == [303] * 5 + [429], reader


def test_an_ipv6_reader_is_limited_by_their_64_not_by_each_address_of_it(live: Live) -> None:
    """A /64 is what one line is given: six sign-ups from six of its addresses are one
    client's six; another /64 has its own limit."""
    answers = []
    for n in range(1, 7):
        forwarded = {"X-Forwarded-For": f"2001:db8:aa:bb::{n:x}"}
        with httpx.Client(base_url=live.base, headers=forwarded, timeout=10) as client:
            answers.append(sign_up(client, f"v6-{n}@example.com").status_code)
    assert answers == [303] * 5 + [429]
    other = {"X-Forwarded-For": "2001:db8:aa:bc::1"}
    with httpx.Client(base_url=live.base, headers=other, timeout=10) as client:
        assert sign_up(client, "v6-other@example.com").status_code == 303


def test_a_rotated_secret_keeps_old_links_working_until_the_configured_moment(live: Live) -> None:
    subscriber = live.add("reader@example.com", {"backend"})
    old = TokenSigner("the-old-secret", clock=live.clock)
    token = old.sign(Purpose.MANAGE, subscriber)
    rotated = TokenSigner(
        "the-new-secret",
        previous_key="the-old-secret",
        previous_until=live.clock() + timedelta(days=30),
        clock=live.clock,
    )
    assert rotated.verify(Purpose.MANAGE, token)["s"] == subscriber
    assert rotated.sign(Purpose.MANAGE, subscriber) != token  # new links use the new key
    live.clock.now += timedelta(days=31)
    with pytest.raises(InvalidToken, match="invalid"):
        rotated.verify(Purpose.MANAGE, token)


def test_leaving_a_topic_and_pausing(live: Live) -> None:
    subscriber = live.add("reader@example.com", {"backend", "data"})
    signer = live.project.signer()
    with live.client() as client:
        token = signer.sign(Purpose.MANAGE, subscriber)
        assert client.get(f"/unsubscribe/{token}/topic/no-such-topic").status_code == 404
        leave = f"/unsubscribe/{token}/topic/data"
        page = client.get(leave)
        assert "Stop getting Data Engineering?" in page.text
        assert client.post(leave, data={"csrf": csrf_of(page)}).status_code == 303
        assert live.subscriber("reader@example.com").topics == {"backend"}
        preferences = f"/preferences/{signer.sign(Purpose.MANAGE, subscriber)}"
        page = client.get(preferences)
        client.post(preferences, data={"csrf": csrf_of(page), "action": "pause"})
    paused = live.subscriber("reader@example.com")
    assert paused.paused(live.clock()) and not paused.paused(live.clock() + timedelta(days=29))


def test_a_save_from_a_page_whose_choices_changed_since_is_refused_not_undone(
    live: Live,
) -> None:
    """A preferences page left open while the reader stops a topic from an email: saving it
    would put the topic back. It is refused, the page shows the choices as they are now, and
    saving from that page works."""
    subscriber = live.add("reader@example.com", {"backend", "data"})
    token = live.project.signer().sign(Purpose.MANAGE, subscriber)
    preferences = f"/preferences/{token}"
    with live.client() as client:
        stale = client.get(preferences)
        seen = re.search(r'name="seen" value="([0-9a-f]{16})"', stale.text)
        assert seen is not None
        leave = f"/unsubscribe/{token}/topic/data"
        client.post(leave, data={"csrf": csrf_of(client.get(leave))})
        assert live.subscriber("reader@example.com").topics == {"backend"}

        form = {"csrf": csrf_of(stale), "action": "save", "seen": seen.group(1)}
        refused = client.post(preferences, data={**form, "topics": ["backend", "data", "ai-ml"]})
        assert refused.status_code == 409
        assert "Nothing was saved" in refused.text
        assert live.subscriber("reader@example.com").topics == {"backend"}
        checked = set(re.findall(r'name="topics" value="([a-z-]+)" checked', refused.text))
        assert checked == {"backend"}

        fresh = re.search(r'name="seen" value="([0-9a-f]{16})"', refused.text)
        assert fresh is not None and fresh.group(1) != seen.group(1)
        again = {**form, "seen": fresh.group(1), "topics": ["backend", "ai-ml"]}
        assert client.post(preferences, data=again).status_code == 303
    assert live.subscriber("reader@example.com").topics == {"backend", "ai-ml"}


def test_a_reader_without_their_email_can_ask_for_their_link(live: Live) -> None:
    live.add("active@example.com", {"data"})
    live.add("left@example.com", {"data"}, Status.UNSUBSCRIBED)
    with live.client() as client:
        form = client.get("/preferences")
        assert "Email me my link" in form.text
        assert client.post("/preferences", data={"email": "active@example.com"}).status_code == 403
        answers = [
            client.post("/preferences", data={"csrf": csrf_of(form), "email": address})
            for address in ("active@example.com", "left@example.com", "nobody@example.com")
        ]
        assert {a.status_code for a in answers} == {200} and len({a.text for a in answers}) == 1
        bad = client.post("/preferences", data={"csrf": csrf_of(form), "email": "not an address"})
        assert bad.status_code == 400 and "valid email address" in bad.text
        live.settle()
        mails = list(live.outbox.glob("*.eml"))
        assert [m.name.split("-")[0] for m in mails] == ["active@example.com"]
        message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
        text = message.get_body(("plain",))
        assert text is not None
        link = re.search(r"http://localhost:8000(/preferences/[\w.-]+)", text.get_content())
        assert link is not None
        page = client.get(link.group(1))
        assert page.status_code == 200 and "active@example.com" in page.text
