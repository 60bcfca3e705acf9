"""The subscriber store on SQLite and, when DIGEST_TEST_DATABASE_URL is set, PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from digest.models import Topic
from digest.stores import posts as post_store
from subscribers.importer import ImportRow
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
