"""The scheduler's decisions, without I/O and without waiting: the approval gate, catching up
after downtime, slots across DST changes in Europe/Berlin and America/New_York."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from digest.config import DigestConfig
from digest.schedule import (
    Action,
    LeadTrigger,
    catch_up,
    cron_trigger,
    dst_edges,
    gate,
    is_repeat,
    latest_slot,
    slots_between,
)

SLOT = datetime(2026, 11, 30, 7, tzinfo=UTC)  # Monday 08:00 in Berlin
LEAD = timedelta(hours=24)
HOUR = timedelta(hours=1)


def digest(schedule: str = "0 8 * * mon", timezone: str = "Europe/Berlin") -> DigestConfig:
    return DigestConfig(slug="weekly", name="Weekly", schedule=schedule, timezone=timezone)


# the gate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "approval", "now", "action"),
    [
        # auto: sent at the slot, not before
        ("auto", "none", SLOT, Action.SEND),
        ("auto", "none", SLOT + HOUR, Action.SEND),
        ("auto", "none", SLOT - HOUR, Action.WAIT),
        # require: ask within the lead, wait for the editor, skip at the deadline
        ("require", "none", SLOT - 2 * LEAD, Action.WAIT),
        ("require", "none", SLOT - LEAD, Action.NOTIFY),
        ("require", "none", SLOT - HOUR, Action.NOTIFY),
        ("require", "pending", SLOT - HOUR, Action.WAIT),
        ("require", "pending", SLOT, Action.SKIP),
        ("require", "none", SLOT, Action.SKIP),
        ("require", "approved", SLOT - HOUR, Action.WAIT),
        ("require", "approved", SLOT, Action.SEND),
        ("require", "approved", SLOT + 5 * HOUR, Action.SEND),
        # hold: never sent by the scheduler, whatever the time
        ("hold", "none", SLOT, Action.HOLD),
        ("hold", "none", SLOT - HOUR, Action.HOLD),
        ("hold", "held", SLOT + LEAD, Action.HOLD),
        ("hold", "approved", SLOT, Action.SEND),
        # an editor's decision wins over the policy
        ("auto", "held", SLOT, Action.HOLD),
        ("auto", "pending", SLOT - HOUR, Action.WAIT),
        ("auto", "pending", SLOT, Action.SKIP),
        ("auto", "skipped", SLOT, Action.SKIP),
        ("require", "skipped", SLOT - HOUR, Action.SKIP),
    ],
)
def test_gate(policy: str, approval: str, now: datetime, action: Action) -> None:
    assert gate(policy, approval, now, SLOT, LEAD) is action


# catching up after downtime -------------------------------------------------------------------


def test_several_missed_slots_coalesce_into_one_run_of_the_newest() -> None:
    trigger = cron_trigger(digest("0 8 * * *"))
    down_from = datetime(2026, 11, 20, 6, tzinfo=UTC)
    back_at = datetime(2026, 11, 23, 9, tzinfo=UTC)  # three slots missed, the last 2 h ago
    due = slots_between(trigger, down_from, back_at)
    assert due == [datetime(2026, 11, d, 7, tzinfo=UTC) for d in (20, 21, 22, 23)]
    plan = catch_up(due, back_at, timedelta(hours=6))
    assert plan.run == datetime(2026, 11, 23, 7, tzinfo=UTC)
    assert plan.missed == tuple(due[:-1])


def test_a_slot_beyond_the_grace_is_missed_not_run() -> None:
    due = [SLOT - timedelta(days=1), SLOT]
    plan = catch_up(due, SLOT + timedelta(hours=6, minutes=1), timedelta(hours=6))
    assert plan.run is None and plan.missed == tuple(due)
    assert catch_up(due, SLOT + timedelta(hours=6), timedelta(hours=6)).run == SLOT
    assert catch_up([], SLOT, timedelta(hours=6)) == catch_up([], SLOT, timedelta(0))


def test_latest_slot_is_the_newest_fire_time_within_the_window() -> None:
    trigger = cron_trigger(digest())
    assert latest_slot(trigger, SLOT + 2 * HOUR, 6 * HOUR) == SLOT
    assert latest_slot(trigger, SLOT, 6 * HOUR) == SLOT
    assert latest_slot(trigger, SLOT - timedelta(seconds=1), 6 * HOUR) is None
    assert latest_slot(trigger, SLOT + 7 * HOUR, 6 * HOUR) is None


# DST ----------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_berlin_0230_on_the_spring_forward_day_runs_at_0330_and_on_the_fall_back_day_twice() -> (
    None
):
    edges = dst_edges(digest("30 2 * * *"), NOW)
    assert [(e.day, e.kind) for e in edges] == [
        (date(2027, 3, 28), "missing"),
        (date(2027, 10, 31), "twice"),
    ]
    spring, autumn = edges
    assert spring.wall == time(2, 30) and spring.shift == HOUR
    assert spring.fires == (datetime(2027, 3, 28, 1, 30, tzinfo=UTC),)  # 03:30 CEST
    assert spring.message() == (
        "2027-03-28 02:30 does not exist in Europe/Berlin (clocks go forward 1 h): "
        "APScheduler runs it at 03:30 CEST (01:30 UTC) instead"
    )
    assert autumn.fires == (
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC),  # 02:30 CEST
        datetime(2027, 10, 31, 1, 30, tzinfo=UTC),  # 02:30 CET
    )
    assert "APScheduler fires at 02:30 CEST (00:30 UTC) and again at 02:30 CET (01:30 UTC)" in (
        autumn.message()
    )
    # What the message says is what the trigger does, read independently of dst_edges:
    trigger = cron_trigger(digest("30 2 * * *"))
    day = slots_between(
        trigger, datetime(2027, 10, 30, 12, tzinfo=UTC), datetime(2027, 10, 31, 12, tzinfo=UTC)
    )
    assert day == list(autumn.fires)


def test_new_york_edges_are_found_for_the_days_the_schedule_runs() -> None:
    sundays = dst_edges(digest("30 2 * * sun", "America/New_York"), NOW)
    assert [(e.day, e.kind, e.fires) for e in sundays] == [
        (date(2027, 3, 14), "missing", (datetime(2027, 3, 14, 7, 30, tzinfo=UTC),)),  # 03:30 EDT
    ]  # on 7 Nov 2027 clocks go back from 02:00 to 01:00: 01:xx happens twice, 02:30 once
    night = dst_edges(digest("30 1 * * *", "America/New_York"), NOW)
    assert [(e.day, e.kind) for e in night] == [(date(2027, 11, 7), "twice")]
    assert "01:30 EDT (05:30 UTC) and again at 01:30 EST (06:30 UTC)" in night[0].message()


def test_a_monday_morning_schedule_has_no_edges() -> None:
    assert dst_edges(digest(), NOW) == []
    assert dst_edges(digest("0 8 * * *", "America/New_York"), NOW) == []


def test_the_second_0230_of_the_fall_back_night_is_a_repeat() -> None:
    zone = digest().zone
    first = datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert not is_repeat(first, zone)
    assert is_repeat(first + HOUR, zone)
    assert not is_repeat(datetime(2027, 3, 28, 1, 30, tzinfo=UTC), zone)


def test_the_approval_request_goes_out_the_lead_before_the_slot_in_real_hours() -> None:
    # The slot Monday 29 March 2027 08:00 CEST (06:00 UTC) comes a day after the clocks went
    # forward: a 48 h lead asks on Saturday at 07:00 CET (06:00 UTC), 48 real hours before,
    # not at 08:00 on the Saturday's clock.
    cron = cron_trigger(digest())
    ask = LeadTrigger(cron, timedelta(hours=48))
    slot = cron.get_next_fire_time(None, datetime(2027, 3, 27, tzinfo=UTC))
    assert slot == datetime(2027, 3, 29, 6, tzinfo=UTC)
    fire = ask.get_next_fire_time(None, datetime(2027, 3, 26, tzinfo=UTC))
    assert fire == datetime(2027, 3, 27, 6, tzinfo=UTC)
    nxt = ask.get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert nxt == datetime(2027, 4, 3, 6, tzinfo=UTC)
