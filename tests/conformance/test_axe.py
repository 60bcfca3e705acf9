"""axe-core (the engine auditors run, bundled by axe-playwright-python) on every page a person
sees: each golden email variant, the editor's preview of a real issue, the web archive, every
subscriber page and every editor page, each in light and dark colour schemes (Chromium's
``prefers-color-scheme`` emulation). No serious or critical violation may remain.

One browser and one live server for the module; the pages are visited in a loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.app import gathering, issues, previews
from digest.app.scheduled import run_slot
from digest.passwords import hash_password
from digest.stores.editors import EditorStore
from subscribers.models import Status
from subscribers.tokens import Purpose
from tests.conftest import Live
from tests.digest.render.golden import ALL_KEYS
from tests.digest.render.test_browser import route_images, write_variants

pytestmark = pytest.mark.browser

axe = pytest.importorskip("axe_playwright_python.base")

SCHEMES = ("light", "dark")
BLOCKING = {"serious", "critical"}
EDITOR = ("ed@northwind.example", "correct horse battery")


SPREADSHEETS = Path(__file__).parents[1] / "data" / "spreadsheets"
RUN = "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)"


def audit(page: Any) -> dict[str, list[str]]:
    """The serious and critical violations on the page in each colour scheme, one line each
    (rule, impact, where, why)."""
    found: dict[str, list[str]] = {}
    for scheme in SCHEMES:
        page.emulate_media(color_scheme=scheme)
        for violation in page.evaluate(RUN):
            if violation["impact"] not in BLOCKING:
                continue
            for node in violation["nodes"]:
                summary = node.get("failureSummary", "").splitlines()[-1:]
                found.setdefault(scheme, []).append(
                    f"{violation['id']} ({violation['impact']}) at {node['target']}: {summary}"
                )
    page.emulate_media(color_scheme="light")
    return found


@pytest.fixture(scope="module")
def audited(browser: Any) -> Iterator[Any]:
    """A browser context whose every document loads axe-core first (parsed once per page,
    instead of a 500 KB evaluate per audit)."""
    context = browser.new_context(viewport={"width": 600, "height": 900})
    context.add_init_script(axe.AXE_SCRIPT)
    yield context
    context.close()


def test_golden_email_variants(audited: Any, tmp_path: Path) -> None:
    problems: dict[str, dict[str, list[str]]] = {}
    page = audited.new_page()
    route_images(page)
    variants = write_variants(tmp_path)
    for name, path in variants.items():
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        found = audit(page)
        if found:
            problems[name] = found
    page.close()
    assert len(variants) == len(ALL_KEYS)
    assert problems == {}, problems


@pytest.fixture
def served(live: Live) -> Live:
    """The example site live: its feeds gathered, one editor, and readers of every status."""
    gathering.gather_sources(live.project)
    live.add("reader@example.com", {"backend", "frontend"})
    live.add("pending@example.com", {"data"}, Status.PENDING)
    with live.project.engine.begin() as conn:
        EditorStore(conn).add(EDITOR[0], "Ed", hash_password(EDITOR[1]), live.clock())
    return live


def visit_all(live: Live, visit: Callable[[str, str], None], page: Any) -> None:
    """Every page of the app, in the order a person meets them."""
    signer = live.project.signer()
    reader = live.subscriber("reader@example.com").id
    pending = live.subscriber("pending@example.com").id
    manage = signer.sign(Purpose.MANAGE, reader)
    base = live.base

    visit("home", f"{base}/")
    visit("subscribe", f"{base}/subscribe")
    page.fill("#email", "not an address")
    page.click("button[type=submit]")
    visit("subscribe-refused", "")
    visit("check-your-email", f"{base}/subscribe/check-your-email")
    visit("confirm", f"{base}/confirm/{signer.sign(Purpose.CONFIRM, pending)}")
    visit("invalid-link", f"{base}/confirm/not-a-token")
    visit("preferences", f"{base}/preferences/{manage}")
    visit("preferences-no-token", f"{base}/preferences")
    visit("unsubscribe", f"{base}/unsubscribe/{manage}")
    visit("unsubscribe-topic", f"{base}/unsubscribe/{manage}/topic/backend")
    visit("unsubscribe-no-token", f"{base}/unsubscribe")
    visit("unsubscribed", f"{base}/unsubscribed")
    visit("archive-missing", f"{base}/archive/weekly/99/")

    visit("editor-login", f"{base}/editor/login")
    page.fill("#email", EDITOR[0])
    page.fill("#password", "wrong")
    page.click("form[action='/editor/login'] button[type=submit]")
    visit("editor-login-refused", "")
    page.fill("#password", EDITOR[1])
    page.click("form[action='/editor/login'] button[type=submit]")
    page.wait_for_url(f"{base}/editor/")
    visit("editor-dashboard-empty", "")
    planned = issues.plan(live.project, "weekly")
    assert planned is not None and planned.issue.id is not None
    issue = f"{base}/editor/issues/{planned.issue.id}"
    visit("editor-dashboard", f"{base}/editor/")
    visit("editor-issue", issue)
    visit("editor-issue-phone", f"{issue}?segment=backend&width=phone")
    visit("editor-issue-text", f"{issue}?segment=backend&view=text")
    visit("editor-preview", f"{issue}/preview?segment=backend")
    outcome = run_slot(live.project, "weekly", live.clock())
    assert outcome.kind == "ran"
    visit("editor-issue-sent", issue)
    visit("editor-history", f"{base}/editor/history")
    visit("archive", f"{base}/archive/weekly/1/")
    visit("editor-missing-issue", f"{base}/editor/issues/999999")
    visit("editor-import", f"{base}/editor/subscribers/import")
    page.set_input_files("#file", str(SPREADSHEETS / "excel_semicolons.csv"))
    page.click("form[action='/editor/subscribers/import'] button[type=submit]")
    visit("editor-import-check", "")
    page.click("form[action='/editor/subscribers/import/confirm'] button[type=submit]")
    visit("editor-import-done", "")
    shown = previews.preview(live.project, "weekly", live.project.config.base_dir / "preview")
    visit("preview-index", shown.index.as_uri())


def test_every_subscriber_and_editor_page(audited: Any, served: Live) -> None:
    problems: dict[str, dict[str, list[str]]] = {}
    seen: list[str] = []
    page = audited.new_page()

    def visit(name: str, url: str) -> None:
        if url:
            page.goto(url)
        page.wait_for_load_state("load")
        seen.append(name)
        found = audit(page)
        if found:
            problems[name] = found

    visit_all(served, visit, page)
    page.close()
    import json

    Path("/tmp/axe-web.json").write_text(json.dumps(problems, indent=1))
    assert len(seen) == 29, seen
    assert problems == {}, problems
