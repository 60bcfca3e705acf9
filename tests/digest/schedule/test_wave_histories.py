"""Local-time waves as a property: random histories of readers moving between time zones (to
zones whose wave has passed, is coming or is running, and to no zone), the scheduler process
dying between waves and in the middle of one, over the slots of clock-change nights in
Europe/Berlin and America/New_York. Whatever happens, every reader gets each slot exactly
once, counted in the ledger and in the ``.eml`` files written, and at the first run of the
scheduler at which the wall time of the zone they were in had come: never before it, never a
wave later. On SQLite and PostgreSQL.

The scheduler is driven as in :mod:`tests.digest.schedule.test_wave_runs` (jobs fire in time
order with the injected clock set to their time).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from digest import scheduler as scheduler_face
from digest.app import gathering
from digest.app.wiring import Project
from digest.config import load_config
from digest.lifecycle import IssueStatus
from digest.scaffold import scaffold
from digest.stores import waves as waves_store
from tests.conftest import FixedClock, empty_database
from tests.digest.schedule.test_wave_runs import (
    DATA,
    Driver,
    add_post,
    add_readers,
    delivered,
    expected_instant,
    move,
    outbox_files,
    slot_issues,
    use,
)

ENV = {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
NIGHTS = {
    # A Sunday slot on a clock-change night, and the schedule whose wall time it moves.
    datetime(2026, 3, 29, tzinfo=UTC): "30 2 * * sun",  # Berlin springs forward
    datetime(2026, 10, 25, tzinfo=UTC): "30 2 * * sun",  # Berlin falls back
    datetime(2026, 3, 8, tzinfo=UTC): "30 2 * * sun",  # New York springs forward
    datetime(2026, 11, 1, tzinfo=UTC): "30 1 * * sun",  # New York falls back
}
ZONES = [
    None,
    "Pacific/Kiritimati",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "Pacific/Pago_Pago",
    "Etc/GMT+12",
]
SPAN_MINUTES = 40 * 60
"""Waves of one slot run from 14 hours before its UTC instant to 12 after (+14:00 to −12:00):
events are drawn over that span and a little around it."""

READERS = sorted(
    line.split(",")[0]
    for line in (DATA / "readers.csv").read_text(encoding="utf-8").splitlines()[1:]
)
"""The readers of tests/data/waves/readers.csv (as added by ``add_readers``), by address."""
move_st = st.tuples(
    st.just("move"),
    st.integers(0, SPAN_MINUTES),
    st.integers(0, len(READERS) - 1),
    st.sampled_from(ZONES),
)
event_st = st.one_of(
    move_st,
    move_st,  # as likely as the two kinds of crash together
    st.tuples(st.just("restart"), st.integers(0, SPAN_MINUTES), st.just(0), st.just(None)),
    st.tuples(st.just("die in a wave"), st.integers(0, SPAN_MINUTES), st.just(0), st.just(None)),
)
Event = tuple[str, int, int, str | None]


@contextlib.contextmanager
def dying_in_the_next_wave() -> Iterator[None]:
    """The process dies in the next wave that runs: after recording and sending, before the
    wave is marked done (the worst moment: its readers have their email)."""
    real = waves_store.mark_recorded

    def dies(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed")

    waves_store.mark_recorded = dies
    try:
        yield
    finally:
        waves_store.mark_recorded = real


def _run(kind: str, folder: Path, night: datetime, events: list[Event]) -> None:
    config = load_config(scaffold(folder / "site"), ENV)
    clock = FixedClock(night - timedelta(days=3))
    project = Project.open(config, clock=clock, engine=empty_database(kind, folder))
    try:
        use(project, schedule=NIGHTS[night], local_delivery=True)
        gathering.gather_sources(project)
        zones = add_readers(project)
        emails = READERS
        assert sorted(zones) == emails
        add_post(project, 1, night - timedelta(days=1))
        driver = Driver(project, clock)
        runs: list[datetime] = []
        """When a scheduler job ran (also one that died), in order."""
        moves: list[tuple[datetime, str, str | None]] = []
        first = night - timedelta(hours=15)
        for kind_of, minute, reader, zone in sorted(events, key=lambda e: e[1]):
            at = first + timedelta(minutes=minute)
            if kind_of == "die in a wave":
                with dying_in_the_next_wave(), contextlib.suppress(KeyboardInterrupt):
                    driver.run_until(at, runs.append)
                driver.crash_and_restart()
                continue
            driver.run_until(at, runs.append)
            if kind_of == "move":
                move(project, emails[reader], zone)
                moves.append((at, emails[reader], zone))
            else:
                driver.crash_and_restart()
        driver.run_until(night + timedelta(days=3), runs.append)

        [row] = [r for r in slot_issues(project) if r.slot is not None]
        got = Counter(email for issue, email, _ in delivered(project) if issue == row.id)
        assert got == Counter(emails), f"{events}: {got}"
        assert outbox_files(project) == Counter(emails), events
        assert row.status == IssueStatus.SENT, events
        with project.engine.connect() as conn:
            stored = waves_store.waves_of(conn, row.id)
        assert all(w.done for w in stored), events
        slot = row.slot
        assert slot is not None

        def due(email: str, moment: datetime) -> bool:
            """The wall time of the slot has come in the zone the reader was in then (a move
            at a run's own time came after it)."""
            zone = zones[email]
            for at, who, where in moves:
                if who == email and at < moment:
                    zone = where
            return expected_instant(slot, zone) <= moment

        last_wave = stored[-1].wave_at
        for _, email, when in delivered(project):
            if when < last_wave:  # the last wave takes everyone left
                assert due(email, when), (email, when, events)
            missed = [t for t in runs if t < when and t >= stored[0].wave_at and due(email, t)]
            assert not missed, (email, when, missed, events)
    finally:
        scheduler_face._service = None
        project.engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
@settings(
    max_examples=int(os.environ.get("WAVE_EXAMPLES", "6")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # Each example is a whole slot of waves (seconds): shrinking one took too long.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(night=st.sampled_from(sorted(NIGHTS)), events=st.lists(event_st, max_size=12))
# Pago Pago's reader moves to Tokyo after Tokyo's wave (09:00 + 540 min = 18:00 UTC, 02:30 in
# Tokyo was 17:30): due at the next wave, not at the last one.
@example(
    night=datetime(2026, 3, 29, tzinfo=UTC),
    events=[("move", 540, READERS.index("pago-pago1@example.com"), "Asia/Tokyo")],
)
# Dies in the last wave (−12:00 at 14:30 UTC), after it sent the issue, before it marked the
# wave: the scheduler coming back finds the issue sent and the wave to close.
@example(night=datetime(2026, 3, 29, tzinfo=UTC), events=[("die in a wave", 2218, 0, None)])
def test_every_reader_gets_the_slot_once_whatever_moves_and_crashes_come_between_waves(
    kind: str, tmp_path_factory: pytest.TempPathFactory, night: datetime, events: list[Event]
) -> None:
    _run(kind, tmp_path_factory.mktemp("waves"), night, events)
