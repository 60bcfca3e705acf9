"""Schedules in words: what the dashboard and `digest schedule list` say instead of cron."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from apscheduler.triggers.cron import CronTrigger
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.schedule.words import schedule_in_words

ZONE = "Europe/Berlin"


@pytest.mark.parametrize(
    ("cron", "said"),
    [
        ("0 8 * * mon", "Mondays at 08:00"),
        ("5 9 * * tue", "Tuesdays at 09:05"),
        ("30 7 * * mon-fri", "Weekdays at 07:30"),
        ("0 8 * * sat,sun", "Saturdays and Sundays at 08:00"),
        ("0 8 * * mon,wed,fri", "Mondays, Wednesdays and Fridays at 08:00"),
        ("0 8 * * MON", "Mondays at 08:00"),
        ("0 8 * * *", "Every day at 08:00"),
        ("0 8,17 * * *", "Every day at 08:00 and 17:00"),
        ("0,30 8 * * *", "Every day at 08:00 and 08:30"),
        ("0 8 1 * *", "On the 1st of every month at 08:00"),
        ("0 8 1,15 * *", "On the 1st and 15th of every month at 08:00"),
        ("0 6 2,3,22 * *", "On the 2nd, 3rd and 22nd of every month at 06:00"),
        ("0 6 11,12,13 * *", "On the 11th, 12th and 13th of every month at 06:00"),
        ("0  8 *  * mon", "Mondays at 08:00"),
    ],
)
def test_common_schedules_are_said_in_words(cron: str, said: str) -> None:
    assert schedule_in_words(cron, ZONE) == f"{said}, {ZONE}"


@pytest.mark.parametrize(
    "cron",
    [
        "*/5 * * * *",  # every five minutes: steps are not said
        "* * * * *",
        "0 8-17 * * *",  # a range of hours
        "0 8 * 1 *",  # only in January
        "0 8 2 * mon",  # cron's "day of month OR weekday" is a trap to put in words
        "0 8 * * fri-mon",  # a range that wraps
        "0 8 1,2,3,4 * *",
        "0 1,2,3,4,5 * * *",
        "0 8 * *",  # not five fields
        "0 25 * * *",
        "0 8 * * 1",  # numbers: the config refuses them, and they are not said
    ],
)
def test_anything_else_is_shown_as_its_cron_text(cron: str) -> None:
    assert schedule_in_words(cron, ZONE) == f"cron {' '.join(cron.split())}, {ZONE}"


DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@settings(deadline=None, max_examples=60)
@given(
    st.integers(0, 59),
    st.integers(0, 23),
    st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True),
)
def test_the_words_name_the_days_and_time_the_scheduler_fires(
    minute: int, hour: int, days: list[str]
) -> None:
    """Held against APScheduler itself: each day the sentence names is a day it fires, at the
    time it says."""
    cron = f"{minute} {hour} * * {','.join(days)}"
    said = schedule_in_words(cron, "UTC")
    trigger = CronTrigger.from_crontab(cron, timezone="UTC")
    fired = set()
    moment = datetime(2026, 11, 22, tzinfo=UTC)  # a Sunday
    for _ in range(7):
        moment = trigger.get_next_fire_time(None, moment)
        fired.add(moment.strftime("%A"))
        assert f"{moment:%H:%M}" in said
        moment = moment.replace(second=1)
    if said.startswith("Every day"):
        assert len(fired) == 7
    elif said.startswith("Weekdays"):
        assert fired == {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}
    else:
        named = {day for day in fired if f"{day}s" in said}
        assert named == fired
