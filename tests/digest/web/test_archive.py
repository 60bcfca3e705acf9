"""The web archive served: validators and caching headers for link scanners, 304s, the page's
main landmark and no subscriber footer, the index and the Atom feed over HTTP."""

from __future__ import annotations

from typing import Any

import feedparser
import pytest

from digest.app import gathering, sending
from tests.conftest import SCREENSHOTS, Live


@pytest.fixture
def sent(live: Live) -> Live:
    gathering.gather_sources(live.project)
    live.add("scanner.target@example.com", {"backend", "frontend"})
    _, report = sending.send(live.project)
    assert report is not None and report.submitted == 1
    return live


def test_an_issue_page_carries_validators_and_answers_a_conditional_get_with_304(
    sent: Live,
) -> None:
    with sent.client() as client:
        page = client.get("/archive/weekly/1/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        etag, modified = page.headers["etag"], page.headers["last-modified"]
        assert etag.startswith('"') and modified.endswith(" GMT")
        assert page.headers["cache-control"] == "public, max-age=600"
        assert page.headers["x-content-type-options"] == "nosniff"  # the security headers too
        body = page.content
        assert body.count(b"<main>") == 1
        assert b"You are getting this" not in body and b"Unsubscribe" not in body
        assert b"scanner.target" not in body

        again = client.get("/archive/weekly/1/", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        weak = client.get("/archive/weekly/1/", headers={"If-None-Match": f'"x", W/{etag}'})
        assert weak.status_code == 304
        other = client.get("/archive/weekly/1/", headers={"If-None-Match": '"other"'})
        assert other.status_code == 200 and other.content == body
        since = client.get("/archive/weekly/1/", headers={"If-Modified-Since": modified})
        assert since.status_code == 304
        # If-None-Match decides when both are given (RFC 9110).
        both = client.get(
            "/archive/weekly/1/",
            headers={"If-None-Match": '"other"', "If-Modified-Since": modified},
        )
        assert both.status_code == 200
        garbage = client.get("/archive/weekly/1/", headers={"If-Modified-Since": "yesterday"})
        assert garbage.status_code == 200
        head = client.head("/archive/weekly/1/")
        assert head.status_code == 200 and head.headers["etag"] == etag and head.content == b""

        for missing in (
            "/archive/weekly/2/",
            "/archive/weekly/0/",
            "/archive/weekly/99999999999999999999/",
            "/archive/monthly/1/",
            "/archive/monthly/",
            "/archive/monthly/feed.atom",
        ):
            answer = client.get(missing)
            assert answer.status_code == 404, missing
            assert "etag" not in answer.headers
        assert sent.app.state.services.archive._rendering == {}  # nothing kept for them


def test_index_and_feed_are_served(sent: Live) -> None:
    public = sent.project.config.site.public_url
    with sent.client() as client:
        index = client.get("/archive/weekly/")
        assert index.status_code == 200
        assert f'href="{public}/archive/weekly/1/"' in index.text
        feed_link = f'href="{public}/archive/weekly/feed.atom"'
        assert f'type="application/atom+xml" title="The Northwind Weekly" {feed_link}' in index.text
        assert index.text.count("<main>") == 1
        feed = client.get("/archive/weekly/feed.atom")
        assert feed.status_code == 200
        assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
        parsed = feedparser.parse(feed.content)
        assert not parsed.bozo and [e.link for e in parsed.entries] == [
            f"{public}/archive/weekly/1/"
        ]


def test_the_page_has_one_main_landmark_in_a_browser(sent: Live, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    try:
        page.goto(f"{sent.base}/archive/weekly/1/")
        assert page.locator("main").count() == 1
        assert page.get_by_role("main").locator("h1").count() == 1
        assert page.get_by_role("link", name="Subscribe").count() == 1
        assert page.get_by_text("Choose your topics").count() == 0
        page.screenshot(path=str(SCREENSHOTS / "archive-page.png"), full_page=True)
    finally:
        page.close()
