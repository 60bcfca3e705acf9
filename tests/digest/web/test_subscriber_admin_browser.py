"""The subscriber pages in headless Chromium: an editor finds a reader, changes their topics,
sends an issue so the history fills, and erases someone after typing their address. Every
page at 375 and 1280 px, light and dark, with no sideways scrolling on a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from digest.app import sending
from subscribers.store import SubscriberStore
from tests.conftest import SCREENSHOTS
from tests.digest.web.conftest import EditorSite

pytestmark = pytest.mark.browser


def shoot(page: Any, name: str) -> None:
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for width in (375, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            path = SCREENSHOTS / f"editor-subscribers-{name}-{width}-{scheme}.png"
            page.screenshot(path=str(path), full_page=True)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width, (name, width, scheme, scroll)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_find_change_topics_and_erase_a_reader(browser: Any, site: EditorSite) -> None:
    live = site.live
    with live.project.engine.begin() as conn:
        store = SubscriberStore(conn)
        store.add(
            "maximiliane.very-long-address-for-a-phone@subdomain.example.com",
            "Maximiliane Oberhuber-Świętochowska",
            frozenset({"backend", "data", "frontend"}),
            live.clock(),
            "web",
        )
    sending.send(live.project, "weekly", force=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    site.browse(page, "/editor/subscribers")
    assert page.locator("tbody tr").count() == 6
    shoot(page, "all")

    page.fill("#q", "maximiliane")
    page.select_option("#topic", "data")
    page.click("form[role=search] button[type=submit]")
    page.wait_for_url("**q=maximiliane**")
    assert page.locator("tbody tr").count() == 1
    shoot(page, "found")

    page.click("text=maximiliane.very-long-address-for-a-phone@subdomain.example.com")
    page.wait_for_url("**/editor/subscribers/*")
    assert "weekly #1" in page.content() and "submitted" in page.content()
    shoot(page, "person")
    page.uncheck("input[name=topic][value=frontend]")
    page.click("text=Save topics")
    page.wait_for_url("**done=topics")
    assert "Topics saved." in page.content()
    assert live.subscriber(
        "maximiliane.very-long-address-for-a-phone@subdomain.example.com"
    ).topics == {"backend", "data"}

    page.fill("#confirm", "someone else")
    page.click("text=Erase for good")
    assert "Type the address exactly" in page.content()
    shoot(page, "erase-refused")
    page.fill("#confirm", "maximiliane.very-long-address-for-a-phone@subdomain.example.com")
    page.click("text=Erase for good")
    page.wait_for_url("**/editor/subscribers?done=erased")
    assert "Erased." in page.content()
    shoot(page, "erased")
    assert (
        live.subscriber("maximiliane.very-long-address-for-a-phone@subdomain.example.com") is None
    )
    page.close()


def test_import_a_file_after_seeing_what_it_would_do(browser: Any, site: EditorSite) -> None:
    live = site.live
    spreadsheets = Path(__file__).parents[2] / "data" / "spreadsheets"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    site.browse(page, "/editor/subscribers/import")
    shoot(page, "import")

    page.set_input_files("#file", str(spreadsheets / "mailchimp_members_with_groups.csv"))
    page.fill("#topics_column", "What would you like to read about?")
    page.fill("#topics", "Security")
    page.click("text=Check the file")
    page.wait_for_selector("text=Nothing has changed yet.")
    assert page.locator(".problems li").count() == 1
    shoot(page, "import-check")
    assert live.subscriber("ines@example.pt") is None

    page.click("text=Import 3 rows")
    page.wait_for_selector("text=Imported mailchimp_members_with_groups.csv.")
    shoot(page, "import-done")
    assert live.subscriber("ines@example.pt").topics == {"backend", "data"}
    page.close()
