"""An editor's whole round in headless Chromium: log in, plan and open the next issue, preview a
segment at both widths and as plain text, send a test (it lands in the outbox), approve, and
the scheduled job sends it. Screenshots of every page at 375 and 1280 px."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from digest import db
from digest.app import sending
from digest.app.scheduled import run_slot
from digest.config import Config, load_config
from digest.scaffold import scaffold
from digest.send import leases
from digest.send.outbox import OutboxTransport
from digest.stores.issues import issue_row
from tests.conftest import SCREENSHOTS
from tests.digest.web.conftest import EditorSite

pytestmark = pytest.mark.browser


@pytest.fixture
def example_config(tmp_path: Path, environ: dict[str, str]) -> Config:
    """The example site with approval required, as a newsroom would run it."""
    path = scaffold(tmp_path / "site")
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "max_posts_per_topic = 4",
        'max_posts_per_topic = 4\napproval = "require"\nnotify = ["ed@northwind.example"]',
        1,
    )
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ)


def shoot(page: Any, name: str) -> None:
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"editor-{name}-{width}.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
    page.set_viewport_size({"width": 1280, "height": 900})


def messages(folder: Path) -> list[EmailMessage]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def test_log_in_preview_test_approve_and_the_scheduled_job_sends(
    browser: Any, site: EditorSite
) -> None:
    live = site.live
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live.base}/editor/")
    page.wait_for_url("**/editor/login?next=**")
    shoot(page, "login")
    page.fill("#email", site.email)
    page.fill("#password", "not the password")
    page.click("form[action='/editor/login'] button[type=submit]")
    assert "Wrong email or password." in page.content()
    page.fill("#password", site.password)
    page.click("form[action='/editor/login'] button[type=submit]")
    page.wait_for_url(f"{live.base}/editor/")
    assert "The Northwind Weekly" in page.content()
    assert "Nothing planned" in page.content()
    shoot(page, "dashboard-empty")

    page.click("text=Plan the next issue now")
    page.wait_for_url("**/editor/issues/*")
    issue_url = page.url.split("?")[0]
    issue_id = int(issue_url.rsplit("/", 1)[1])
    assert "Issue 1" in page.content() and "waiting for approval" in page.content()
    shoot(page, "issue")

    # A segment, at both widths: the frame is as wide as the toggle says and holds the email.
    page.select_option("#segment", "backend+data")
    page.click("form:has(#segment) button[type=submit]")
    page.wait_for_url("**segment=backend%2Bdata**")
    frame = page.frame_locator("#preview iframe")
    assert frame.locator("text=Backend & Infrastructure").first.is_visible()
    assert frame.locator("text=Data Engineering").first.is_visible()
    assert frame.locator("text=Frontend").count() == 0
    assert page.eval_on_selector("#preview iframe", "f => f.clientWidth") == 600
    page.click("text=Phone 375 px")
    page.wait_for_url("**width=phone**")
    assert page.eval_on_selector("#preview iframe", "f => f.clientWidth") == 375
    shoot(page, "issue-phone-preview")
    page.click("text=Desktop 600 px")
    page.wait_for_url("**width=desktop**")
    assert page.eval_on_selector("#preview iframe", "f => f.clientWidth") == 600
    page.click("text=Plain text")
    page.wait_for_url("**view=text**")
    assert "Backend & Infrastructure" in page.inner_text("#text-part")
    shoot(page, "issue-text")

    # A test to my own address: in the outbox, marked, of the segment on screen.
    page.click(f"text=Send a test to {site.email}")
    page.wait_for_url("**done=test**")
    assert f"Test sent to {site.email}." in page.content()
    [test] = messages(live.outbox)
    assert test["To"] == site.email and test["Subject"].startswith("[TEST]")
    assert "Data Engineering" in test["Subject"] or "Data Engineering" in str(test.get_body())

    page.click("#decision button[value=approve]")
    page.wait_for_url("**done=approved**")
    assert "Approved." in page.content()
    shoot(page, "issue-approved")
    with live.project.engine.connect() as conn:
        row = issue_row(conn, issue_id)
    assert (row.approval, row.approval_by) == ("approved", site.email)

    # The scheduler's job for the slot sends the approved issue, exactly as approved.
    outcome = run_slot(live.project, "weekly", live.clock())  # the clock is at the slot
    assert outcome.kind == "ran" and outcome.issue_id == issue_id
    issue_folder = OutboxTransport.issue_folder(live.project.config.outbox_dir, "weekly", 1)
    sent = messages(issue_folder)
    assert len(sent) == 5  # one per reader set up in the fixture
    page.goto(issue_url)
    assert "was sent" in page.content()
    page.goto(f"{live.base}/editor/history")
    assert "Issue 1" in page.content() and "Web archive" in page.content()
    shoot(page, "history")
    page.goto(f"{live.base}/editor/")
    shoot(page, "dashboard-sent")
    page.close()


def test_an_editor_sends_a_closed_issues_ambiguous_deliveries_again(
    browser: Any, site: EditorSite
) -> None:
    live = site.live
    project = live.project
    planned, report = sending.send(project, force=True)
    assert planned is not None and planned.issue.id is not None and report is not None
    issue_id = planned.issue.id
    with project.engine.begin() as conn:
        first = conn.execute(
            select(func.min(db.send_batches.c.id)).where(db.send_batches.c.issue_id == issue_id)
        ).scalar_one()
        unknown = leases.mark_unknown(conn, first, "no answer", project.clock())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    site.browse(page, f"/editor/issues/{issue_id}")
    assert "This issue was sent." in page.content()
    assert f"{unknown} deliver" in page.content()
    shoot(page, "issue-ambiguous")
    page.click("#resend button[type=submit]")
    page.wait_for_url("**done=resending**")
    assert "Sending the ambiguous deliveries again." in page.content()
    shoot(page, "issue-resending")
