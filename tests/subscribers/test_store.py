"""The subscriber store on SQLite and, when DIGEST_TEST_DATABASE_URL is set, PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from digest.models import Topic
from digest.stores import posts as post_store
from subscribers.importer import ImportRow, Kept
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import empty_database

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def rows(*items: tuple[str, str, set[str]]) -> list[ImportRow]:
    return [ImportRow(i + 2, e, n, frozenset(t)) for i, (e, n, t) in enumerate(items)]


def test_upsert_adds_updates_and_never_resurrects_the_suppressed(engine: Engine) -> None:
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("backend", "Backend"), Topic("data", "Data")])
        store = SubscriberStore(conn)
        first = store.upsert(
            rows(("a@example.com", "Ann", {"backend"}), ("b@example.com", "Bob", {"data"})),
            NOW,
            "test",
        )
        assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
        store.set_status("B@example.com", Status.UNSUBSCRIBED, NOW)
        again = store.upsert(
            rows(
                ("A@EXAMPLE.COM", "Ann Lee", {"backend", "data"}),
                ("b@example.com", "Bob", {"data"}),
                ("c@example.com", "Cy", {"data"}),
            ),
            NOW,
            "test",
            dry_run=True,
        )
        assert (again.added, again.updated, again.suppressed) == (1, 1, ("b@example.com",))
        assert store.get("c@example.com") is None
        store.upsert(rows(("a@example.com", "Ann Lee", {"backend", "data"})), NOW, "test")
        ann = store.get("a@example.com")
        assert ann is not None and ann.topics == {"backend", "data"} and ann.name == "Ann Lee"
        bob = store.get("b@example.com")
        assert bob is not None and bob.status is Status.UNSUBSCRIBED


def test_known_readers_each_take_their_own_row_of_a_chunk(engine: Engine) -> None:
    """The names and topics of a chunk's known readers are written together: over two chunks
    of readers in every state, each ends with what its own row says, or as it was when the
    row may not touch it (bounced: only the person's own confirmation), and the readers whose
    row says nothing new keep their last change's date."""
    slugs = ["backend", "data", "design"]
    later = NOW + timedelta(days=1)
    states = [Status.ACTIVE, Status.PENDING, Status.UNSUBSCRIBED, Status.BOUNCED]
    readers = range(1100)

    def state(n: int) -> Status:
        return states[n % 4]

    def second_row(n: int) -> tuple[str, str, set[str]]:
        name = f"Reader {n}" if n % 5 == 0 else f"Renamed {n}"
        topics = {slugs[n % 3]} if n % 2 == 0 else set(slugs[: n % 3 + 1])
        return f"r{n}@example.com", name, topics

    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic(slug, slug.title()) for slug in slugs])
        store = SubscriberStore(conn)
        store.upsert(
            rows(*[(f"r{n}@example.com", f"Reader {n}", {slugs[n % 3]}) for n in readers]), NOW, "t"
        )
        ids = {s.email: s.id for s in store.iterate()}
        for status in states[1:]:
            chosen = [ids[f"r{n}@example.com"] for n in readers if state(n) is status]
            store.set_status_of_many(chosen, status, NOW)
        store.upsert(rows(*[second_row(n) for n in readers]), later, "t", reactivate=True)
        for n in readers:
            email, name, topics = second_row(n)
            found = store.get(email)
            row = store.row(ids[email])
            assert found is not None and row is not None
            if state(n) is Status.BOUNCED:
                assert (found.name, set(found.topics)) == (f"Reader {n}", {slugs[n % 3]}), n
                assert found.status is Status.BOUNCED
                continue
            assert (found.name, set(found.topics), found.status) == (name, topics, Status.ACTIVE), n
            said_nothing_new = (
                state(n) is Status.ACTIVE and name == f"Reader {n}" and topics == {slugs[n % 3]}
            )
            assert row.changed_at == (NOW if said_nothing_new else later), n


def test_iterate_streams_in_chunks_in_id_order(engine: Engine) -> None:
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("backend", "Backend")])
        store = SubscriberStore(conn)
        store.upsert(rows(*[(f"p{i}@example.com", "", {"backend"}) for i in range(25)]), NOW, "t")
        store.set_status("p3@example.com", Status.BOUNCED, NOW)
        everyone = list(store.iterate(chunk_size=4))
        active = list(store.iterate(chunk_size=4, status=Status.ACTIVE))
        per_status, per_topic = store.stats()
    assert len(everyone) == 25 and [s.id for s in everyone] == sorted(s.id for s in everyone)
    assert len(active) == 24
    assert per_status == {"active": 24, "bounced": 1}
    assert per_topic == {"backend": 24}


# What an import does to a known address: (status here, status in the file, --reactivate) →
# status after. None in the file: a file without a status column (written by hand).
S = Status
MERGES = [
    (S.ACTIVE, None, False, S.ACTIVE),
    (S.ACTIVE, S.PENDING, False, S.ACTIVE),
    (S.ACTIVE, S.UNSUBSCRIBED, False, S.UNSUBSCRIBED),
    (S.ACTIVE, S.COMPLAINED, False, S.COMPLAINED),
    (S.PENDING, None, False, S.ACTIVE),
    (S.PENDING, S.PENDING, False, S.PENDING),
    (S.PENDING, S.BOUNCED, False, S.BOUNCED),
    (S.UNSUBSCRIBED, None, False, S.UNSUBSCRIBED),
    (S.UNSUBSCRIBED, S.ACTIVE, False, S.UNSUBSCRIBED),
    (S.UNSUBSCRIBED, None, True, S.ACTIVE),
    (S.UNSUBSCRIBED, S.ACTIVE, True, S.ACTIVE),
    (S.UNSUBSCRIBED, S.UNSUBSCRIBED, True, S.UNSUBSCRIBED),
    (S.UNSUBSCRIBED, S.PENDING, True, S.UNSUBSCRIBED),
    (S.BOUNCED, S.ACTIVE, True, S.BOUNCED),
    (S.COMPLAINED, None, True, S.COMPLAINED),
    (S.COMPLAINED, S.ACTIVE, True, S.COMPLAINED),
    (S.COMPLAINED, S.UNSUBSCRIBED, False, S.COMPLAINED),
]


def test_an_import_never_makes_a_suppressed_address_active_without_consent(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("data", "Data")])
        store = SubscriberStore(conn)
        for i, (here, _, _, _) in enumerate(MERGES):
            store.add(f"p{i}@example.com", "", frozenset({"data"}), NOW, "test", here)
        for reactivate in (False, True):
            file = [
                ImportRow(i, f"p{i}@example.com", "", frozenset({"data"}), Kept(said))
                for i, (_, said, wanted, _) in enumerate(MERGES)
                if wanted is reactivate
            ]
            store.upsert(file, NOW, "test", reactivate=reactivate)
        after = [store.get(f"p{i}@example.com").status for i in range(len(MERGES))]  # type: ignore[union-attr]
    assert after == [expected for *_, expected in MERGES]


def test_postgresql_plans_an_import_for_the_rows_it_has_written(tmp_path: Path) -> None:
    """An import is one transaction, which autovacuum cannot see into: without statistics
    of its own rows, every chunk's lookups were planned for the empty tables it began with
    (sequential scans). What the planner knows of the list keeps up with the import."""
    engine = empty_database("postgresql", tmp_path)
    readers = [(f"p{n}@example.com", "", {"backend"}) for n in range(2500)]
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("backend", "Backend")])
        SubscriberStore(conn).upsert(rows(*readers), NOW, "t")
        known: dict[str, float] = dict(
            conn.exec_driver_sql(
                "SELECT relname, reltuples FROM pg_class "
                "WHERE relname IN ('subscribers', 'subscriptions')"
            ).all()
        )
    engine.dispose()
    # Statistics taken each time the list doubled: they count at least half of it.
    assert known.keys() == {"subscribers", "subscriptions"}
    assert all(len(readers) / 2 <= float(rows) <= len(readers) for rows in known.values()), known
