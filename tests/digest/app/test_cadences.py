"""Readers' cadences and time zones through the use cases, on SQLite and PostgreSQL: a switch
writes the watermark of the cadence left, once; the default chosen explicitly is kept; bad
names and zones are refused naming them; editors' counts come from one grouped query."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from digest import db
from digest.app import people, subscribers
from digest.app.readers import Readers
from digest.app.wiring import Project
from digest.errors import DigestError
from digest.stores import posts as post_store
from subscribers import tables
from subscribers.models import Status
from subscribers.store import CHUNK, DigestReaders, SubscriberStore
from tests.cadence_site import cadence_config
from tests.conftest import FixedClock


@pytest.fixture
def project(tmp_path: Path, environ: dict[str, str], clock: FixedClock, engine: Engine) -> Project:
    opened = Project.open(cadence_config(tmp_path / "site", environ), clock=clock, engine=engine)
    with engine.begin() as conn:
        post_store.sync_topics(conn, opened.topics())
    return opened


def add(project: Project, email: str, topics: str = "backend") -> int:
    return subscribers.add(project, email, "", topics).id


def recorded_issue(project: Project, cadence: str, release_to: int, number: int) -> None:
    """An issue of ``cadence`` whose recording finished, ending at ``release_to``."""
    now = project.clock()
    with project.transaction() as conn:
        conn.execute(
            insert(db.issues).values(
                digest="weekly",
                number=number,
                status="sent",
                cutoff=now,
                created_at=now,
                recorded_at=now,
                cadence=cadence,
                takes_default=cadence == project.config.digest("weekly").default,
                release_from=0,
                release_to=release_to,
            )
        )


def rows_of(project: Project, subscriber_id: int) -> list[tuple[str, int | None]]:
    rc = tables.reader_cadences.c
    with project.reading() as conn:
        return [
            (r.cadence, r.watermark)
            for r in conn.execute(
                select(rc.cadence, rc.watermark).where(rc.subscriber_id == subscriber_id)
            )
        ]


def test_a_switch_takes_the_watermark_of_the_cadence_left(project: Project) -> None:
    reader = add(project, "wed@example.com")
    recorded_issue(project, "weekly", 17, 1)
    recorded_issue(project, "daily", 21, 2)
    assert subscribers.choose_cadence(project, reader, "weekly", "daily")
    # Weekly (their default) ended at 17: on daily they are owed what came after it.
    assert rows_of(project, reader) == [("daily", 17)]
    assert not subscribers.choose_cadence(project, reader, "weekly", "daily")  # no change
    assert rows_of(project, reader) == [("daily", 17)]
    assert subscribers.choose_cadence(project, reader, "weekly", "monthly")
    assert rows_of(project, reader) == [("monthly", 17)]  # their own watermark goes with them


def test_the_default_chosen_explicitly_is_written_and_owes_nothing_new(
    project: Project,
) -> None:
    reader = add(project, "stay@example.com")
    recorded_issue(project, "weekly", 9, 1)
    assert not subscribers.choose_cadence(project, reader, "weekly", "weekly")
    assert rows_of(project, reader) == [("weekly", 9)]  # where weekly's readers stand
    with project.reading() as conn:
        assert SubscriberStore(conn).cadences_of(reader) == {"weekly": "weekly"}


@pytest.mark.parametrize(
    "name", ["hourly", "", "Daily\r\nX: y", "../../etc/passwd", "x" * 100_000, "daily\x00"]
)
def test_an_unknown_cadence_is_refused_naming_it(project: Project, name: str) -> None:
    reader = add(project, "bad@example.com")
    with pytest.raises(DigestError) as refused:
        subscribers.choose_cadence(project, reader, "weekly", name)
    assert "has no cadence" in str(refused.value) and "daily, weekly, monthly" in str(refused.value)
    assert len(str(refused.value)) < 300
    assert rows_of(project, reader) == []


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("Europe/Berlin", "Europe/Berlin"), (" asia/kathmandu ", "Asia/Kathmandu"), ("", None)],
)
def test_time_zones_are_stored_by_their_iana_name(
    project: Project, typed: str, stored: str | None
) -> None:
    reader = add(project, "tz@example.com")
    assert subscribers.set_time_zone(project, reader, typed) == stored
    with project.reading() as conn:
        assert SubscriberStore(conn).time_zone_of(reader) == stored


@pytest.mark.parametrize(
    "zone",
    [
        "../../etc/passwd",
        "/etc/localtime",
        "Europe/Berlin\r\nX:",
        "Mars/Olympus",
        "Europe/Berlin\x00",
        "E" * 100_000,
        "\u202eEurope/Berlin",
    ],
)
def test_hostile_zones_are_refused(project: Project, zone: str) -> None:
    reader = add(project, "hostile@example.com")
    with pytest.raises(DigestError) as refused:
        subscribers.set_time_zone(project, reader, zone)
    assert "not a time zone" in str(refused.value) and len(str(refused.value)) < 200
    with project.reading() as conn:
        assert SubscriberStore(conn).time_zone_of(reader) is None


def test_counts_per_cadence_count_readers_without_a_row_under_the_default(
    project: Project, clock: FixedClock
) -> None:
    ids = [add(project, f"r{i}@example.com", "backend;data") for i in range(6)]
    subscribers.choose_cadence(project, ids[0], "weekly", "daily")
    subscribers.choose_cadence(project, ids[1], "weekly", "daily")
    subscribers.choose_cadence(project, ids[2], "weekly", "monthly")
    subscribers.choose_cadence(project, ids[3], "weekly", "weekly")
    with project.transaction() as conn:
        SubscriberStore(conn).set_status_of(ids[4], Status.UNSUBSCRIBED, clock())
    assert subscribers.cadence_counts(project) == {
        "weekly": [("daily", 2), ("weekly", 2), ("monthly", 1)]
    }


def test_counts_follow_each_digests_topics_and_defaults(project: Project) -> None:
    backend = add(project, "b@example.com", "backend")
    add(project, "d@example.com", "data")
    subscribers.choose_cadence(project, backend, "weekly", "daily")
    with project.reading() as conn:
        counts = SubscriberStore(conn).cadence_counts(
            [
                DigestReaders("weekly", "weekly", frozenset({"backend"})),
                DigestReaders("other", "monthly", frozenset({"data", "backend"})),
            ]
        )
    assert counts == {("weekly", "daily"): 1, ("other", "monthly"): 2}


def test_a_switch_locks_and_keeps_the_row_lock_order(project: Project, clock: FixedClock) -> None:
    """Two readers switching in one transaction (an import) write both rows, each once; with
    nothing released yet, the watermark they take is 0 (owed every release to come)."""
    a, b = add(project, "a@example.com"), add(project, "b@example.com")
    with project.transaction() as conn:
        for reader in (a, b, a):
            subscribers.choose_cadences(
                conn, project.config, reader, {"weekly": "daily"}, clock() + timedelta(1)
            )
    assert rows_of(project, a) == [("daily", 0)] and rows_of(project, b) == [("daily", 0)]


def test_cli_add_takes_cadence_and_zone(project: Project) -> None:
    added = subscribers.add(
        project, "cli@example.com", "", "backend", cadence="daily", time_zone="asia/tokyo"
    )
    assert added.time_zone == "Asia/Tokyo"
    assert rows_of(project, added.id) == [("daily", 0)]
    with pytest.raises(DigestError, match=r"--cadence.*unknown cadence 'hourly'"):
        subscribers.add(project, "cli2@example.com", "", "backend", cadence="hourly")
    with pytest.raises(DigestError, match="--time-zone"):
        subscribers.add(project, "cli3@example.com", "", "backend", time_zone="Nowhere/Else")


def test_an_import_switches_known_readers_with_their_watermark_and_keeps_good_rows(
    project: Project, tmp_path: Path
) -> None:
    known = add(project, "ann@example.com")
    recorded_issue(project, "weekly", 12, 1)
    source = tmp_path / "in.csv"
    source.write_text(
        "email,name,topics,cadence,time_zone\n"
        "ann@example.com,,backend,daily,Europe/Berlin\n"
        "new@example.com,,backend,monthly,\n"
        "bad@example.com,,backend,fortnightly,\n",
        encoding="utf-8",
    )
    parsed = subscribers.read_file(project, source)
    assert [(p.line, "unknown cadence 'fortnightly'" in p.reason) for p in parsed.problems] == [
        (4, True)
    ]
    summary = subscribers.import_file(project, parsed, str(source), dry_run=False)
    assert (summary.added, summary.updated) == (1, 1)
    assert rows_of(project, known) == [("daily", 12)]
    with project.reading() as conn:
        store = SubscriberStore(conn)
        ann, new = store.get("ann@example.com"), store.get("new@example.com")
        assert ann is not None and ann.time_zone == "Europe/Berlin"
        assert new is not None and new.time_zone is None
        assert store.get("bad@example.com") is None
    assert rows_of(project, new.id) == [("monthly", 12)]
    again = subscribers.import_file(project, parsed, str(source), dry_run=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
    exported = tmp_path / "out.csv"
    subscribers.export(project, exported)
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(",cadence,time_zone")
    assert lines[1].endswith(",weekly:daily,Europe/Berlin")


def test_an_import_switches_each_reader_as_a_switch_of_their_own_would(
    project: Project, tmp_path: Path
) -> None:
    """An import writes a chunk's cadences together (each row on its own took fourteen times
    as long): every reader it switches ends as the same switch made alone leaves a twin who
    held the same (a cadence with or without a watermark of their own, a delivery in an issue
    of the cadence they leave still being recorded, nothing), over more than one chunk."""
    rng = random.Random(21)
    count = CHUNK + 60
    people_file = tmp_path / "people.csv"
    people_file.write_text(
        "email,name,topics\n"
        + "".join(f"{twin}{n}@example.com,,backend\n" for twin in "ab" for n in range(count)),
        encoding="utf-8",
    )
    parsed = subscribers.read_file(project, people_file)
    subscribers.import_file(project, parsed, str(people_file), dry_run=False)
    recorded_issue(project, "weekly", 12, 1)
    recorded_issue(project, "daily", 21, 2)
    now = project.clock()
    held_rows, deliveries = [], []
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        ids = {s.email: s.id for s in store.iterate()}
        recording = conn.execute(
            insert(db.issues)
            .values(
                digest="weekly",
                number=3,
                status="sending",
                cutoff=now,
                created_at=now,
                cadence="daily",
                release_from=21,
                release_to=40,
            )
            .returning(db.issues.c.id)
        ).scalar_one()
        for n in range(count):
            held = rng.choice(
                [None, ("daily", None), ("daily", 7), ("monthly", 3), ("weekly", None)]
            )
            delivered = rng.random() < 0.3
            for twin in "ab":
                reader = ids[f"{twin}{n}@example.com"]
                if held is not None:
                    held_rows.append(
                        {
                            "subscriber_id": reader,
                            "digest": "weekly",
                            "cadence": held[0],
                            "watermark": held[1],
                            "changed_at": now,
                        }
                    )
                if delivered:
                    deliveries.append(
                        {
                            "issue_id": recording,
                            "subscriber_id": reader,
                            "created_at": now,
                            "changed_at": now,
                        }
                    )
        conn.execute(insert(tables.reader_cadences), held_rows)
        conn.execute(insert(db.deliveries), deliveries)
    chosen = [rng.choice(["daily", "weekly", "monthly"]) for _ in range(count)]
    source = tmp_path / "cadences.csv"
    source.write_text(
        "email,name,topics,cadence\n"
        + "".join(f"a{n}@example.com,,backend,{c}\n" for n, c in enumerate(chosen)),
        encoding="utf-8",
    )
    subscribers.import_file(project, subscribers.read_file(project, source), str(source), False)
    for n, cadence in enumerate(chosen):
        subscribers.choose_cadence(project, ids[f"b{n}@example.com"], "weekly", cadence)

    rc = tables.reader_cadences.c
    with project.reading() as conn:
        rows = {
            r.subscriber_id: (r.cadence, r.watermark)
            for r in conn.execute(select(rc.subscriber_id, rc.cadence, rc.watermark))
        }
    imported = [rows.get(ids[f"a{n}@example.com"]) for n in range(count)]
    alone = [rows.get(ids[f"b{n}@example.com"]) for n in range(count)]
    assert imported == alone
    # Every way a watermark comes about was taken: their own (7, 3), a horizon (12, 21), the
    # issue being recorded (40), none (the default chosen explicitly).
    assert {7, 3, 12, 21, 40, None} <= {row[1] for row in imported if row is not None}


def test_personal_data_shows_and_erasure_forgets_cadences_and_zone(project: Project) -> None:
    reader = subscribers.add(
        project, "gone@example.com", "", "backend", cadence="monthly", time_zone="Asia/Tokyo"
    ).id
    held = people.personal_data(project, reader)["subscriber"]
    assert (held["cadences"], held["time_zone"]) == ({"weekly": "monthly"}, "Asia/Tokyo")
    people.erase(project, reader)
    assert rows_of(project, reader) == []
    with project.reading() as conn:
        assert SubscriberStore(conn).time_zone_of(reader) is None


def test_switches_at_the_same_moment_run_one_after_the_other(project: Project) -> None:
    """Four requests switching one reader at once (two tabs, a double click): no error, one
    row, and the watermark is the one they had when they left their first cadence, whatever
    order the threads run in, on SQLite and PostgreSQL."""
    reader = add(project, "tabs@example.com")
    recorded_issue(project, "weekly", 10, 1)
    recorded_issue(project, "daily", 20, 2)
    recorded_issue(project, "monthly", 30, 3)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def switch(name: str) -> None:
        start.wait()
        try:
            subscribers.choose_cadence(project, reader, "weekly", name)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [
        threading.Thread(target=switch, args=(name,))
        for name in ("daily", "monthly", "daily", "monthly")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [(cadence, watermark)] = rows_of(project, reader)
    assert cadence in ("daily", "monthly") and watermark == 10


def hold_withdrawn(project: Project, reader: int) -> None:
    """The reader's row names "fortnightly", a cadence the config does not offer (as after
    the editor withdrew it)."""
    with project.transaction() as conn:
        conn.execute(
            insert(tables.reader_cadences).values(
                subscriber_id=reader,
                digest="weekly",
                cadence="fortnightly",
                watermark=None,
                changed_at=project.clock(),
            )
        )


def test_a_withdrawn_cadence_shows_as_the_default_and_choosing_it_switches_from_where_it_stood(
    project: Project,
) -> None:
    """Before the next planning moves them, a reader whose cadence the config withdrew sees
    the default chosen on the preferences page; saving it switches them from where the
    withdrawn cadence left them."""
    reader = add(project, "left@example.com")
    recorded_issue(project, "fortnightly", 12, 1)
    hold_withdrawn(project, reader)
    readers = Readers(project, project.mailer())
    assert readers.choices_of(reader)[0] == {"weekly": "weekly"}
    assert subscribers.choose_cadence(project, reader, "weekly", "weekly")
    assert rows_of(project, reader) == [("weekly", 12)]  # where fortnightly ended


def test_an_export_leaves_out_a_withdrawn_cadence_so_that_it_imports_back(
    project: Project, tmp_path: Path
) -> None:
    stray, daily = add(project, "left@example.com"), add(project, "daily@example.com")
    subscribers.choose_cadence(project, daily, "weekly", "daily")
    hold_withdrawn(project, stray)
    exported = tmp_path / "out.csv"
    assert subscribers.export(project, exported) == 2
    text = exported.read_text(encoding="utf-8")
    assert "fortnightly" not in text and "weekly:daily" in text
    again = subscribers.read_file(project, exported)
    assert not again.problems
    report = subscribers.import_file(project, again, str(exported), dry_run=False)
    assert report.unchanged == 2
    assert rows_of(project, daily)[0][0] == "daily"
