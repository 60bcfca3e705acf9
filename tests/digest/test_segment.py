"""Segmentation: the pure rule, its key's text form, and the rule in SQL held to the pure one
(on SQLite and, when DIGEST_TEST_DATABASE_URL is set, PostgreSQL)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert

from digest.models import Owed, Topic
from digest.segment import (
    Owing,
    Standing,
    assign,
    decode_key,
    encode_key,
    has_readers,
    segment_members,
    segment_sizes,
)
from digest.stores import posts as post_store
from subscribers import tables
from subscribers.importer import ImportRow
from subscribers.models import Status, Subscriber
from subscribers.store import SubscriberStore

TOPICS = ["backend", "ai-ml", "data", "frontend", "security"]
NOW = datetime(2026, 11, 23, tzinfo=UTC)

subscriber_lists = st.lists(
    st.builds(
        Subscriber,
        id=st.integers(1, 10_000),
        email=st.just("x@example.com"),
        name=st.just(""),
        status=st.sampled_from(list(Status)),
        topics=st.frozensets(st.sampled_from(TOPICS)),
        paused_until=st.none()
        | st.sampled_from([NOW - timedelta(days=1), NOW + timedelta(days=1)]),
    ),
    max_size=60,
)


@given(subscriber_lists, st.frozensets(st.sampled_from(TOPICS)))
def test_every_active_unpaused_reader_with_news_is_in_exactly_one_segment(
    people: list[Subscriber], issue_topics: frozenset[str]
) -> None:
    assigned = list(assign(people, issue_topics, NOW))
    assert [s for s, _ in assigned] == [
        s
        for s in people
        if s.status is Status.ACTIVE
        and not (s.paused_until and s.paused_until > NOW)
        and s.topics & issue_topics
    ]
    assert not any(s.status.suppressed or s.status is Status.PENDING for s, _ in assigned)
    for subscriber, key in assigned:
        assert key == Owed(subscriber.topics & issue_topics)
        assert key.topics and key.topics <= issue_topics
    assert sum(segment_sizes(people, issue_topics, NOW).values()) == len(assigned)


@given(st.frozensets(st.sampled_from(TOPICS), min_size=1), st.none() | st.integers(0, 10**6))
def test_keys_round_trip_through_the_ledger_text(topics: frozenset[str], since: int | None) -> None:
    key = Owed(topics, since)
    assert decode_key(encode_key(key)) == key
    assert ("@" in encode_key(key)) == (since is not None)


def test_segment_members_follow_the_segment_rule(engine: Engine) -> None:
    """The database's segmentation (what a send records) agrees with the pure rule in
    digest.segment for active, paused, pending and suppressed readers."""
    topics = ["backend", "data", "ai", "web"]
    rng = random.Random(5)
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic(t, t.title()) for t in topics])
        store = SubscriberStore(conn)
        store.upsert(
            [
                ImportRow(i, f"r{i}@example.com", f"R {i}", frozenset(rng.sample(topics, k)))
                for i, k in enumerate(rng.choices([0, 1, 2, 3], k=300))
            ],
            NOW,
            "test",
        )
        everyone = list(store.iterate())
        for person in rng.sample(everyone, 60):
            store.set_status_of(person.id, rng.choice(list(Status)), NOW)
        for person in rng.sample(everyone, 40):
            later = NOW + timedelta(days=rng.choice([-3, 3]))
            store.update(person.id, NOW, paused_until=later)
        issue_topics = ("backend", "data", "ai")
        expected = {s.id: key for s, key in assign(store.iterate(), issue_topics, NOW)}
        found = dict(segment_members(conn, issue_topics, NOW))
    assert found == expected
    assert 100 < len(found) < 300  # the population mixes every case


def test_segment_members_follow_the_owed_rule(engine: Engine) -> None:
    """With cadences and watermarks: the query and the pure rule agree on who is owed what
    (readers of other cadences, watermarks below the issue, at its base, between, above)."""
    topics = ["backend", "data", "ai", "web"]
    rng = random.Random(7)
    owing = Owing(
        "weekly",
        "daily",
        True,
        release_from=10,
        base=20,
        latest={"backend": 30, "data": 18, "ai": 25},
    )
    standings: dict[int, Standing] = {}
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic(t, t.title()) for t in topics])
        store = SubscriberStore(conn)
        store.upsert(
            [
                ImportRow(i, f"r{i}@example.com", f"R {i}", frozenset(rng.sample(topics, k)))
                for i, k in enumerate(rng.choices([0, 1, 2, 3], k=300))
            ],
            NOW,
            "test",
        )
        everyone = list(store.iterate())
        for person in rng.sample(everyone, 40):
            store.set_status_of(person.id, rng.choice(list(Status)), NOW)
        rows = []
        for person in rng.sample(everyone, 150):
            standing = Standing(
                rng.choice(["daily", "weekly", "monthly"]),
                rng.choice([None, None, 5, 10, 15, 18, 20, 24, 30, 40]),
            )
            standings[person.id] = standing
            rows.append(
                {
                    "subscriber_id": person.id,
                    "digest": "weekly",
                    "cadence": standing.cadence,
                    "watermark": standing.watermark,
                    "changed_at": NOW,
                }
            )
        conn.execute(insert(tables.reader_cadences), rows)
        issue_topics = ("backend", "data", "ai")
        expected = {
            s.id: key
            for s, key in assign(
                store.iterate(),
                issue_topics,
                NOW,
                owing,
                lambda i: standings.get(i, Standing()),
            )
        }
        found = dict(segment_members(conn, issue_topics, NOW, owing))
    assert found == expected
    assert any(key.since is not None for key in found.values())
    assert any(key.since is None for key in found.values())


def test_whether_anybody_gets_an_issue_follows_the_owed_rule(engine: Engine) -> None:
    """``has_readers`` reads one ungrouped row: for a lone reader in each state (status,
    pause, cadence, own watermark, topics) it says yes exactly when the pure rule owes them
    something."""
    owing = Owing("weekly", "daily", True, release_from=10, base=20, latest={"backend": 30})
    issue_topics = ("backend", "data")
    states = itertools.product(
        [Status.ACTIVE, Status.UNSUBSCRIBED],
        [None, NOW + timedelta(days=1)],
        [None, "daily", "weekly"],
        [None, 5, 24, 40],
        [frozenset({"data"}), frozenset({"backend", "data"})],
    )
    answers = []
    with engine.connect() as conn:
        post_store.sync_topics(conn, [Topic(t, t.title()) for t in issue_topics])
        conn.commit()
        for status, paused, cadence, watermark, topics in states:
            with conn.begin() as trial:
                store = SubscriberStore(conn)
                store.upsert([ImportRow(1, "r@example.com", "R", topics)], NOW, "test")
                [reader] = store.iterate()
                store.set_status_of(reader.id, status, NOW)
                store.update(reader.id, NOW, paused_until=paused)
                standing = Standing(cadence, watermark if cadence else None)
                if cadence is not None:
                    conn.execute(
                        insert(tables.reader_cadences),
                        {
                            "subscriber_id": reader.id,
                            "digest": "weekly",
                            "cadence": cadence,
                            "watermark": watermark,
                            "changed_at": NOW,
                        },
                    )
                [reader] = store.iterate()
                owed = list(
                    assign([reader], issue_topics, NOW, owing, {reader.id: standing}.__getitem__)
                )
                found = has_readers(conn, issue_topics, NOW, owing)
                assert found == bool(owed), (status, paused, cadence, watermark, topics)
                answers.append(found)
                trial.rollback()
    assert True in answers and False in answers
