"""A reader's whole journey in headless Chromium: subscribe, confirm from the email in the
outbox, change topics, unsubscribe. Screenshots of every page at 375 and 1000 px."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from subscribers.models import Status
from tests.conftest import SCREENSHOTS, Live

pytestmark = pytest.mark.browser


def shoot(page: Any, name: str) -> None:
    for width in (375, 1000):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"web-{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)


def confirmation_link(live: Live) -> str:
    live.settle()
    [path] = list(live.outbox.glob("*.eml"))
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    match = re.search(r"(http://\S+/confirm/\S+)", body.get_content())
    assert match
    # The link points at the configured public URL; the test server listens elsewhere.
    return re.sub(r"^https?://[^/]+", live.base, match.group(1))


def test_subscribe_confirm_change_topics_unsubscribe(browser: Any, live: Live) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 900})
    page.goto(f"{live.base}/subscribe")
    shoot(page, "subscribe")
    page.fill("#email", "reader@example.com")
    page.fill("#name", "Robin")
    page.check("input[value=backend]")
    page.check("input[value=frontend]")
    page.click("button[type=submit]")
    page.wait_for_url("**/subscribe/check-your-email")
    assert "Check your inbox" in page.content()
    shoot(page, "check-your-email")
    assert live.subscriber("reader@example.com").status is Status.PENDING

    page.goto(confirmation_link(live))
    assert "Yes, subscribe me" in page.content()
    shoot(page, "confirm")
    page.click("button[type=submit]")
    page.wait_for_url("**/preferences/**")
    assert "You are subscribed" in page.content()
    shoot(page, "preferences-welcome")
    reader = live.subscriber("reader@example.com")
    assert reader.status is Status.ACTIVE and reader.topics == {"backend", "frontend"}

    page.uncheck("input[value=frontend]")
    page.check("input[value=ai-ml]")
    page.click("form:has(input[value=save]) button[type=submit]")
    page.wait_for_url("**saved=save")
    shoot(page, "preferences-saved")
    assert live.subscriber("reader@example.com").topics == {"backend", "ai-ml"}

    page.click("text=Leave everything")
    page.wait_for_url("**/unsubscribe/**")
    shoot(page, "unsubscribe")
    page.click("button[type=submit]")
    page.wait_for_url("**/unsubscribed")
    shoot(page, "unsubscribed")
    assert live.subscriber("reader@example.com").status is Status.UNSUBSCRIBED
    page.close()


def test_a_bad_link_gets_a_friendly_page(browser: Any, live: Live) -> None:
    page = browser.new_page(viewport={"width": 375, "height": 900})
    response = page.goto(f"{live.base}/preferences/not-a-real-token")
    assert response is not None and response.status == 400
    assert "This link does not work" in page.content()
    shoot(page, "invalid-link")
    page.close()
