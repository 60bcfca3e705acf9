"""The subscriber store on SQLite and, when DIGEST_TEST_DATABASE_URL is set, PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from digest.models import Topic
from digest.stores import posts as post_store
from subscribers.importer import ImportRow, Kept
from subscribers.models import Status
from subscribers.store import SubscriberStore

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
