"""Pages an editor or a reader meets in the first hour, in headless Chromium over the real
server: the editor's note (saved on the issue page, shown escaped above the cards in the
HTML and text parts, locked once approved), the schedule in words on the dashboard, and the
404 and 405 pages in the site's style. Screenshots at 375 and 1280 px."""

from __future__ import annotations

from typing import Any

import pytest

from digest.app import issues, previews, sending
from tests.conftest import SCREENSHOTS
from tests.digest.web.conftest import EditorSite, csrf_of

pytestmark = pytest.mark.browser

NOTE = "A short week: <script>alert(1)</script> & two posts on %%unsubscribe_url%% tokens."


def shoot(page: Any, name: str) -> None:
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"ops-{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_editors_note_is_shown_escaped_above_the_cards(browser: Any, site: EditorSite) -> None:
    live = site.live
    issue_id = site.issue_id()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    site.browse(page, "/editor/")
    assert "Mondays at 08:00, Europe/Berlin" in page.inner_text("main")
    shoot(page, "dashboard")

    page.goto(f"{live.base}/editor/issues/{issue_id}")
    page.fill("#editor-note", NOTE)
    page.click("form[action$='/note'] button[type=submit]")
    page.wait_for_url("**done=noted**")
    assert issues.load(live.project, issue_id).note == NOTE
    page.click("form[action$='/note'] button[type=submit]")  # saved again as the form shows it
    page.wait_for_url("**done=noted**")
    assert issues.load(live.project, issue_id).note == NOTE
    frame = page.frame_locator("#preview iframe")
    note = frame.locator(".note").first
    # As text: the script did not run, and the token was not filled in (broken by the guard).
    assert note.inner_text().strip() == NOTE.replace("%%", "%\u200b%")
    intro = frame.locator("text=Hi ").first.bounding_box()
    card = frame.locator("h3").first.bounding_box()
    shown = note.bounding_box()
    assert intro["y"] < shown["y"] < card["y"]
    shoot(page, "issue-note")

    issue = issues.load(live.project, issue_id)
    rendered = live.project.render(issue).variant(frozenset(issue.topic_slugs))
    assert "A short week: &lt;script&gt;alert(1)&lt;/script&gt; &amp; two posts on %\u200b%" in (
        rendered.html
    )
    guarded = NOTE.replace("%%", "%\u200b%")
    assert "\n\n" + guarded + "\n" in rendered.text

    issues.decide(live.project, issue_id, "approve", "ed@northwind.example")
    page.goto(f"{live.base}/editor/issues/{issue_id}")
    assert page.locator("#editor-note").count() == 0
    assert guarded in page.inner_text("#note-panel")
    with live.client() as client:
        site.login(client)
        form = client.get(f"/editor/issues/{issue_id}")
        refused = client.post(
            f"/editor/issues/{issue_id}/note", data={"csrf": csrf_of(form), "editor_note": "x"}
        )
    assert refused.status_code == 409
    assert "this issue can no longer change: it is approved" in refused.text
    assert issues.load(live.project, issue_id).note == NOTE


def test_unknown_pages_and_wrong_methods_get_the_sites_own_page(
    browser: Any, site: EditorSite
) -> None:
    live = site.live
    with live.client() as client:
        missing = client.get("/no/such/page")
        wrong = client.delete("/subscribe")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in missing.text and "Northwind Engineering" in missing.text
    assert wrong.status_code == 405 and "<h1>That does not work here</h1>" in wrong.text
    assert "GET" in wrong.headers["allow"]
    assert missing.headers["x-content-type-options"] == "nosniff"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live.base}/no/such/page")
    assert page.inner_text("h1") == "Page not found"
    shoot(page, "404")
    page.goto(f"{live.base}/subscribe")
    logo = page.locator("a.site img.logo")
    assert logo.evaluate("img => img.complete && img.naturalWidth") > 0  # it loaded
    shoot(page, "subscribe")


def no_sideways_scroll(page: Any) -> None:
    """Neither the page nor any box in it scrolls sideways at this width."""
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    wide = page.evaluate(
        "[...document.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1"
        " && getComputedStyle(e).overflowX !== 'visible').map(e => e.className)"
    )
    assert wide == []


def test_history_and_preview_index_fit_a_phone(
    browser: Any, site: EditorSite, tmp_path: Any
) -> None:
    live = site.live
    sending.send(live.project)
    result = previews.preview(live.project, "weekly", tmp_path / "preview")
    page = browser.new_page(viewport={"width": 375, "height": 900})
    site.browse(page, "/editor/history")
    no_sideways_scroll(page)
    assert page.locator("td[data-label=Submitted]").first.inner_text() == "5"
    shoot(page, "history")
    page.set_viewport_size({"width": 375, "height": 900})
    page.goto(result.index.as_uri())
    no_sideways_scroll(page)
    assert page.locator("td[data-label=Readers]").count() == len(result.files)
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"ops-preview-index-{width}.png"), full_page=True)
