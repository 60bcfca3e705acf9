"""Preflight checks on crafted HTML (tests/data/preflight): every problem found once, a clean
email passes, size is judged against the clip budget, client support against caniemail."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.render.features import load_unsupported
from digest.render.preflight import Report, preflight
from digest.render.size import HTML_BUDGET_BYTES
from tests.conftest import DATA

FIXTURES = DATA / "preflight"


def check(name: str, **options: object) -> Report:
    return preflight((FIXTURES / name).read_text(encoding="utf-8"), **options)  # type: ignore[arg-type]


def messages(report: Report) -> dict[str, tuple[str, int]]:
    return {f.message: (f.level, f.count) for f in report.findings}


def test_a_clean_email_has_no_findings_mailto_and_http_links_pass() -> None:
    report = check("clean.html")
    assert report.findings == ()
    assert report.html_bytes == len((FIXTURES / "clean.html").read_bytes())
    assert not report.client_support_checked


def test_every_crafted_problem_is_reported_at_its_level() -> None:
    found = messages(check("problems.html"))
    assert found == {
        "image without alt text": ("error", 1),
        "linked image with empty alt text": ("error", 1),
        "image without a width attribute": ("warning", 1),
        "image from a file: URL: inboxes will not load it": ("error", 1),
        "image from a data: URL: inboxes will not load it": ("error", 1),
        "javascript: link (only http, https and mailto)": ("error", 1),
        "relative or # link (only http, https and mailto)": ("error", 2),
        "link without a target": ("error", 1),
        "link with an unfilled token": ("error", 1),
    }


def test_findings_name_their_examples_errors_first() -> None:
    report = check("problems.html")
    levels = [f.level for f in report.findings]
    assert levels == sorted(levels, key=lambda level: level != "error")
    relative = next(f for f in report.findings if f.message.startswith("relative"))
    assert relative.examples == ("/relative/path", "#top")
    assert len(report.errors) == 8 and len(report.warnings) == 1


def padded(size: int) -> str:
    head = "<!doctype html><html><body><p>"
    tail = "</p></body></html>"
    return head + "x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (int(HTML_BUDGET_BYTES * 0.9), None),
        (int(HTML_BUDGET_BYTES * 0.9) + 1, "warning"),
        (HTML_BUDGET_BYTES, "warning"),
        (HTML_BUDGET_BYTES + 1, "error"),
    ],
)
def test_size_against_the_clip_budget(size: int, expected: str | None) -> None:
    report = preflight(padded(size))
    assert report.html_bytes == size
    levels = [f.level for f in report.findings if f.check == "size"]
    assert levels == ([expected] if expected else [])


def test_size_counts_bytes_not_characters() -> None:
    text = padded(1000).replace("xx", "é", 400)  # two bytes each, one character
    assert preflight(text).html_bytes == len(text.encode("utf-8"))


def test_client_support_uses_the_table_less_the_allowed_enhancements() -> None:
    unsupported = {
        "css-display-grid": {("outlook", "windows"), ("gmail", "android")},
        "css-at-media": {("outlook", "windows")},
        "css-border-radius": {("outlook", "windows")},
    }
    allowed = {"css-at-media": {("outlook", "windows")}}
    report = check("support.html", unsupported=unsupported, allowed=allowed)
    assert report.client_support_checked
    assert messages(report) == {
        "css-display-grid is not fully supported in Gmail (android), Outlook (windows)": (
            "warning",
            1,
        ),
        "css-border-radius is not fully supported in Outlook (windows)": ("warning", 1),
    }


def test_client_support_with_caniemail_data(corpus: Path) -> None:
    table = load_unsupported(corpus / "caniemail" / "caniemail_latest_support.csv")
    report = check("support.html", unsupported=table)
    flagged = {f.message.split(" ")[0] for f in report.findings if f.check == "client support"}
    assert "css-display-grid" in flagged
    assert "css-at-media" not in flagged  # the phone layout is an allowed enhancement
