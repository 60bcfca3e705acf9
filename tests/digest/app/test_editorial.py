"""The editor app's next slot: strictly later than now, in the digest's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digest.app.editorial import next_slot
from digest.config import DigestConfig

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
