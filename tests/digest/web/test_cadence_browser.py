"""The cadence and time-zone choices in headless Chromium: the sign-up page proposes the
browser's zone (its one script allowed by the page's policy), a reader without JavaScript gets
an empty field, the whole journey keeps the choices, every control has its label, and nothing
scrolls sideways. Screenshots at 375 and 1280 px, light and dark (look at them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from digest.config import Config
from subscribers.models import Status
from subscribers.store import SubscriberStore
from subscribers.tokens import Purpose
from subscribers.zones import canonical_zone
from tests.cadence_site import cadence_config
from tests.conftest import SCREENSHOTS, Live
from tests.digest.web.test_browser_flow import confirmation_link

pytestmark = pytest.mark.browser

UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), button')]
  .filter(el => !(el.labels && el.labels.length) && !el.closest('label')
                && !(el.textContent || '').trim() && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)"""
"""Controls a screen reader would announce without a name."""


@pytest.fixture
def example_config(tmp_path: Path, environ: dict[str, str]) -> Config:
    return cadence_config(tmp_path / "site", environ)


def shoot(browser: Any, url: str, name: str, zone: str = "Europe/Berlin") -> None:
    for scheme in ("light", "dark"):
        for width in (375, 1280):
            context = browser.new_context(
                viewport={"width": width, "height": 900}, color_scheme=scheme, timezone_id=zone
            )
            page = context.new_page()
            page.goto(url)
            page.screenshot(
                path=str(SCREENSHOTS / f"cadence-{name}-{width}-{scheme}.png"), full_page=True
            )
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
            assert page.evaluate(UNLABELLED) == [], name
            context.close()


def test_the_page_proposes_the_browsers_zone_under_its_policy(browser: Any, live: Live) -> None:
    context = browser.new_context(timezone_id="Asia/Kathmandu")
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    page.goto(f"{live.base}/subscribe")
    proposed = page.input_value("#time_zone")
    # Chromium's ICU still says the old spelling, which the zone database keeps as a link.
    assert proposed in ("Asia/Kathmandu", "Asia/Katmandu")
    assert canonical_zone(proposed) == proposed
    assert refused == []
    context.close()


def test_without_javascript_the_field_stays_empty(browser: Any, live: Live) -> None:
    context = browser.new_context(timezone_id="Asia/Kathmandu", java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live.base}/subscribe")
    assert page.input_value("#time_zone") == ""
    context.close()


def test_a_reader_chooses_monthly_in_their_zone_and_changes_it_later(
    browser: Any, live: Live
) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 900}, timezone_id="America/St_Johns"
    )
    page = context.new_page()
    page.goto(f"{live.base}/subscribe")
    page.fill("#email", "robin@example.com")
    page.check("input[value=backend]")
    page.check("input[name=cadence-weekly][value=monthly]")
    page.click("button[type=submit]")
    page.wait_for_url("**/subscribe/check-your-email")
    page.goto(confirmation_link(live))
    page.click("button[type=submit]")
    page.wait_for_url("**/preferences/**")
    reader = live.subscriber("robin@example.com")
    assert reader.status is Status.ACTIVE and reader.time_zone == "America/St_Johns"
    assert page.is_checked("input[name=cadence-weekly][value=monthly]")
    assert page.input_value("#time_zone") == "America/St_Johns"
    page.screenshot(path=str(SCREENSHOTS / "cadence-preferences-welcome-375.png"), full_page=True)

    page.check("input[name=cadence-weekly][value=daily]")
    page.fill("#time_zone", "../../etc/passwd")
    page.click("form:has(input[value=save]) button[type=submit]")
    assert "is not a time zone we know" in page.content()
    assert page.is_checked("input[name=cadence-weekly][value=daily]")  # nothing lost
    page.screenshot(path=str(SCREENSHOTS / "cadence-preferences-refused-375.png"), full_page=True)
    page.fill("#time_zone", "Asia/Tokyo")
    page.click("form:has(input[value=save]) button[type=submit]")
    page.wait_for_url("**saved=save")
    assert live.subscriber("robin@example.com").time_zone == "Asia/Tokyo"
    assert page.is_checked("input[name=cadence-weekly][value=daily]")
    preferences = page.url
    context.close()
    shoot(browser, f"{live.base}/subscribe", "subscribe")
    shoot(browser, preferences, "preferences")


def test_a_tab_left_open_does_not_undo_a_change_made_in_another(browser: Any, live: Live) -> None:
    """Two tabs of the preferences page: the second chooses another cadence and saves; the
    first, still showing weekly, saves a topic change. It is refused, shows the choices as
    saved, and saves once submitted again."""
    for scheme, choice in (("light", "daily"), ("dark", "monthly")):
        email = f"kim-{scheme}@example.com"
        subscriber = live.add(email, {"backend"})
        url = f"{live.base}/preferences/{live.project.signer().sign(Purpose.MANAGE, subscriber)}"
        context = browser.new_context(viewport={"width": 375, "height": 900}, color_scheme=scheme)
        first, second = context.new_page(), context.new_page()
        first.goto(url)
        second.goto(url)
        second.check(f"input[name=cadence-weekly][value={choice}]")
        second.click("form:has(input[value=save]) button[type=submit]")
        second.wait_for_url("**saved=save")
        first.check("input[value=data]")
        first.click("form:has(input[value=save]) button[type=submit]")
        first.wait_for_load_state()
        assert "Nothing was saved" in first.inner_text("[role=alert]")
        assert first.is_checked(f"input[name=cadence-weekly][value={choice}]")
        assert not first.is_checked("input[value=data]")
        assert live.subscriber(email).topics == {"backend"}
        first.screenshot(
            path=str(SCREENSHOTS / f"cadence-preferences-changed-375-{scheme}.png"), full_page=True
        )
        first.check("input[value=data]")
        first.click("form:has(input[value=save]) button[type=submit]")
        first.wait_for_url("**saved=save")
        assert live.subscriber(email).topics == {"backend", "data"}
        with live.project.engine.connect() as conn:
            assert SubscriberStore(conn).cadences_of(subscriber) == {"weekly": choice}
        context.close()
