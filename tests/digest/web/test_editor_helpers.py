"""The editor app's small pure helpers: the next slot, how far off it is, safe redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.config import DigestConfig
from digest.web.editing_pages import next_slot
from digest.web.editor import safe_next, until

MONDAYS = DigestConfig(
    slug="weekly", name="Weekly", schedule="0 8 * * mon", timezone="Europe/Berlin"
)


def test_the_next_slot_is_strictly_later_and_in_the_digest_zone() -> None:
    at_slot = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # Monday 08:00 in Berlin (CET)
    found = next_slot(MONDAYS, at_slot)
    assert found is not None
    assert found.utcoffset() == timedelta(hours=1)
    assert found == at_slot + timedelta(days=7)
    before = next_slot(MONDAYS, at_slot - timedelta(minutes=1))
    assert before == at_slot


def test_the_next_slot_follows_summer_time() -> None:
    found = next_slot(MONDAYS, datetime(2027, 3, 25, 12, 0, tzinfo=UTC))
    assert found is not None
    assert (found.hour, found.utcoffset()) == (8, timedelta(hours=2))  # CEST from 28 March


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
