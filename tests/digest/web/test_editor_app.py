"""The editor app's small pure helpers: how far off a slot is, safe redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.web.editor_app import safe_next, until


def test_until_reads_at_a_glance() -> None:
    now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert until(now, now) == "now"
    assert until(now - timedelta(hours=1), now) == "now"
    assert until(now + timedelta(minutes=40), now) == "in 40 min"
    assert until(now + timedelta(hours=3), now) == "in 3 h"
    assert until(now + timedelta(hours=3, minutes=5), now) == "in 3 h 5 min"
    assert until(now + timedelta(days=1), now) == "in 1 day"
    assert until(now + timedelta(days=6, hours=23), now) == "in 6 days 23 h"
    assert until(None, now) == ""


def test_redirects_after_login_stay_in_the_editor_app() -> None:
    assert safe_next("/editor/issues/4?segment=backend") == "/editor/issues/4?segment=backend"
    for target in (None, "", "https://evil.example/", "//evil.example/editor", "/subscribe"):
        assert safe_next(target) == "/editor/"
