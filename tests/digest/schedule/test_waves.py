"""Local-time waves, pure: which UTC instant a wall time has in each zone, and how zones group
into waves, across DST gaps and folds and the odd offsets (+05:45, +14:00, −11:00, 30-minute
DST)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.schedule.waves import (
    due_zones,
    local_instant,
    slot_of,
    wall_time,
    waves,
)

ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kathmandu",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Australia/Lord_Howe",
    "America/St_Johns",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Etc/GMT+12",
    "Europe/London",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Asia/Tokyo",
    "UTC",
)
ALL_ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith("posix"))


def at(zone: str, *parts: int) -> datetime:
    return local_instant(datetime(*parts), ZoneInfo(zone))  # type: ignore[arg-type]


def test_odd_offsets_and_the_ends_of_the_world() -> None:
    wall = datetime(2026, 11, 23, 8)
    assert at("Asia/Kathmandu", 2026, 11, 23, 8) == datetime(2026, 11, 23, 2, 15, tzinfo=UTC)
    assert at("Pacific/Kiritimati", 2026, 11, 23, 8) == datetime(2026, 11, 22, 18, tzinfo=UTC)
    assert at("Etc/GMT+12", 2026, 11, 23, 8) == datetime(2026, 11, 23, 20, tzinfo=UTC)
    assert at("Pacific/Pago_Pago", 2026, 11, 23, 8) == datetime(2026, 11, 23, 19, tzinfo=UTC)
    assert slot_of(wall) == datetime(2026, 11, 22, 18, tzinfo=UTC)  # +14 comes first
    assert wall_time(slot_of(wall)) == wall
    found = waves(wall, ZONES, "Europe/Berlin")
    assert found[0].at == slot_of(wall) and found[0].zones == ("Pacific/Kiritimati",)
    assert found[-1].zones == ("Etc/GMT+12",) and found[-1].offset_label() == "-12:00"
    kathmandu = next(w for w in found if "Asia/Kathmandu" in w.zones)
    assert kathmandu.offset_label() == "+05:45"


def test_a_gap_runs_at_the_first_instant_after_it_and_a_fold_at_the_first_occurrence() -> None:
    # Berlin, 29 March 2026: 02:00 CET → 03:00 CEST. 02:30 does not exist.
    assert at("Europe/Berlin", 2026, 3, 29, 2, 30) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    # New York, 8 March 2026: 02:00 EST → 03:00 EDT.
    assert at("America/New_York", 2026, 3, 8, 2, 30) == datetime(2026, 3, 8, 7, tzinfo=UTC)
    # Lord Howe, 4 October 2026: 02:00 → 02:30 (a 30-minute change).
    assert at("Australia/Lord_Howe", 2026, 10, 4, 2, 15) == datetime(
        2026, 10, 3, 15, 30, tzinfo=UTC
    )
    # Folds: Berlin 25 October 2026 02:30 happens at 00:30 and 01:30 UTC; the first counts.
    assert at("Europe/Berlin", 2026, 10, 25, 2, 30) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert at("America/New_York", 2026, 11, 1, 1, 30) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert at("Australia/Lord_Howe", 2026, 4, 5, 1, 45) == datetime(
        2026,
        4,
        4,
        14,
        45,
        tzinfo=UTC,  # +11:00, before 02:00 goes back to 01:30
    )


def test_zones_sharing_an_instant_share_a_wave_and_unknown_names_go_with_the_default() -> None:
    wall = datetime(2026, 11, 23, 8)
    found = waves(wall, ["Europe/Berlin", "Europe/Paris", "Mars/Olympus"], "Europe/Berlin")
    assert [w.zones for w in found] == [("Europe/Berlin", "Europe/Paris", "Mars/Olympus")]
    due = due_zones(wall, ZONES, "UTC", datetime(2026, 11, 23, 7, 30, tzinfo=UTC))
    assert "Asia/Kathmandu" in due and "Europe/Berlin" in due and "UTC" not in due


walls = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)
)


@settings(max_examples=300, deadline=None)
@given(wall=walls, zones=st.lists(st.sampled_from(ALL_ZONES), max_size=12))
def test_every_zone_is_in_exactly_one_wave_at_its_own_local_wall_time(
    wall: datetime, zones: list[str]
) -> None:
    found = waves(wall, zones, "Europe/Berlin")
    listed = [z for w in found for z in w.zones]
    assert sorted(listed) == sorted({*zones, "Europe/Berlin"})  # each once
    assert [w.at for w in found] == sorted({w.at for w in found})  # one wave per instant
    for wave in found:
        for name in wave.zones:
            local = wave.at.astimezone(ZoneInfo(name)).replace(tzinfo=None)
            if local != wall:  # the wall time does not exist there: the first instant after
                assert local > wall
                before = (wave.at - timedelta(seconds=1)).astimezone(ZoneInfo(name))
                assert before.replace(tzinfo=None) < wall
            else:  # and of two occurrences, the first
                earlier = wave.at - timedelta(hours=3)
                assert all(
                    (earlier + timedelta(minutes=m)).astimezone(ZoneInfo(name)).replace(tzinfo=None)
                    != wall
                    for m in range(0, 180, 15)
                )
            assert slot_of(wall) <= wave.at  # nobody before the slot's first possible wave


@settings(max_examples=200, deadline=None)
@given(
    wall=walls, zones=st.lists(st.sampled_from(ALL_ZONES), max_size=12), hours=st.integers(0, 30)
)
def test_due_zones_grow_with_time_and_end_with_every_zone(
    wall: datetime, zones: list[str], hours: int
) -> None:
    start = slot_of(wall)
    now = start + timedelta(hours=hours)
    due = due_zones(wall, zones, "UTC", now)
    later = due_zones(wall, zones, "UTC", now + timedelta(hours=1))
    assert due <= later
    assert due_zones(wall, zones, "UTC", start + timedelta(hours=27)) == {*zones, "UTC"}
