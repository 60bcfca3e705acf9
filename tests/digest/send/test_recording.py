"""Recording an issue in the ledger, on SQLite and (with DIGEST_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import Engine, case, func, insert, select
from sqlalchemy.exc import IntegrityError

from digest import db
from digest.models import Topic
from digest.segment import encode_key, segmentation
from digest.send import ledger, recording, reporting
from digest.stores import posts as post_store
from subscribers import tables as subscriber_tables
from subscribers.store import SubscriberStore
from tests.digest.send.ledger_fixtures import (
    LEASE,
    NOW,
    RECORDER,
    issue_being_recorded,
    issue_with_batches,
    record,
)


def test_an_issue_is_recorded_once(engine: Engine) -> None:
    issue_id = issue_with_batches(engine, readers=2)
    with engine.begin() as conn:
        # Recorded: nobody takes the recording again, and a late recorder writes nothing.
        assert not recording.take_recording(conn, issue_id, RECORDER, lambda w: False)
    assert record(engine, issue_id, 4) == 0
    with engine.connect() as conn:
        assert sum(reporting.counts(conn, issue_id).values()) == 2
        # And if a slip ever wrote a delivery twice, the key would refuse it before sending.
        with pytest.raises(
            (IntegrityError, psycopg.errors.UniqueViolation), match=r"pk_deliveries|UNIQUE"
        ):
            conn.execute(
                insert(db.deliveries).from_select(
                    ["issue_id", "subscriber_id", "batch_id", "created_at", "changed_at"],
                    select(
                        db.deliveries.c.issue_id,
                        db.deliveries.c.subscriber_id,
                        db.deliveries.c.batch_id,
                        db.deliveries.c.created_at,
                        db.deliveries.c.changed_at,
                    ),
                )
            )


def test_a_recording_stopped_between_groups_is_finished_by_the_next_worker(
    engine: Engine,
) -> None:
    """Groups commit one by one (sending starts with the first); a recorder that stops
    after one group leaves the rest to whoever takes the recording over, and every reader
    ends up with exactly one delivery."""
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("data", "Data"), Topic("ai", "AI")])
        store = SubscriberStore(conn)
        for i in range(30):
            topics = [frozenset({"data"}), frozenset({"ai"}), frozenset({"data", "ai"})][i % 3]
            store.add(f"r{i}@example.com", "", topics, NOW, "test")
        issue_id = issue_being_recorded(conn)

    def record_as(recorder: recording.Recorder, groups_allowed: int) -> int:
        allowed = iter(range(groups_allowed))
        with engine.connect() as conn:
            with conn.begin():
                found = segmentation(conn, ["data", "ai"], NOW)
            assert found is not None
            return recording.record(
                conn,
                issue_id,
                found.addressed,
                lambda topics: encode_key(found.topics(topics)),
                4,
                recorder,
                group_size=1,  # a group per segment
                proceed=lambda: next(allowed, None) is not None,
            )

    assert record_as(RECORDER, 1) == 10  # the first segment, then stopped
    with engine.begin() as conn:
        assert not recording.recorded(conn, issue_id)
        # Its lease was let go when it stopped: another worker takes over at once.
        assert not recording.recording_open(conn, issue_id, NOW, lambda w: True)
        other = recording.Recorder("host:2:other", lambda: NOW, LEASE)
        assert recording.take_recording(conn, issue_id, other, lambda w: True)
        # The first recorder, back, no longer holds the recording.
        assert not recording.take_recording(conn, issue_id, RECORDER, lambda w: True)
    assert record_as(RECORDER, 9) == 0
    assert record_as(other, 9) == 20
    with engine.connect() as conn:
        assert recording.recorded(conn, issue_id)
        assert reporting.counts(conn, issue_id) == {ledger.PENDING: 30}
        d = db.deliveries.c
        assert (
            conn.execute(
                select(func.count(func.distinct(d.subscriber_id))).where(d.issue_id == issue_id)
            ).scalar_one()
            == 30
        )


def test_one_topic_set_written_two_ways_is_still_batched_by_segment(engine: Engine) -> None:
    """The database promises no order for a member's list of topics: the same set may come
    as "a,b" and as "b,a". Members are placed by that text, so such a segment comes as two
    runs of places; each member still gets one delivery, in a batch of their own segment."""
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("data", "Data")])
        store = SubscriberStore(conn)
        ids = [
            store.add(f"r{i}@example.com", "", frozenset({"data"}), NOW, "test").id
            for i in range(31)
        ]
        issue_id = issue_being_recorded(conn)
    s = subscriber_tables.subscribers.c
    written = case((s.id % 3 == 0, "a,b"), (s.id % 3 == 1, "b,a"), else_="a")
    members = select(s.id, written, s.email, s.name)
    with engine.connect() as conn:
        recorded = recording.record(
            conn,
            issue_id,
            members,
            lambda topics: "+".join(sorted(topics.split(","))),
            3,
            RECORDER,
            group_size=10,
        )
    assert recorded == 31
    with engine.connect() as conn:
        d, b = db.deliveries.c, db.send_batches.c
        rows = conn.execute(
            select(d.subscriber_id, b.id, b.segment, b.size).join(
                db.send_batches, b.id == d.batch_id
            )
        ).all()
    assert sorted(subscriber for subscriber, *_ in rows) == sorted(ids)
    for subscriber, _, segment, _ in rows:
        assert segment == ("a" if subscriber % 3 == 2 else "a+b")
    size = {batch: size for _, batch, _, size in rows}
    in_batch = Counter(batch for _, batch, _, _ in rows)
    assert all(in_batch[batch] == size[batch] <= 3 for batch in size)
    # "a,b" and "b,a" were batched apart: 10 and 11 members make 4 + 4 batches of up to 3
    # (21 together would have made 7).
    segment_of_batch = {batch: segment for _, batch, segment, _ in rows}
    assert Counter(segment_of_batch.values()) == {"a": 4, "a+b": 8}


def test_a_recorders_lease_keeps_others_out_until_it_dies_or_runs_out(engine: Engine) -> None:
    with engine.begin() as conn:
        issue_id = issue_being_recorded(conn)
        later = recording.Recorder("host:2:b", lambda: NOW + timedelta(minutes=1), LEASE)
        assert recording.recording_open(conn, issue_id, NOW, lambda w: True)
        assert not recording.take_recording(conn, issue_id, later, lambda w: True)
        # Its process is gone (or its lease ran out): the recording is open to others.
        assert not recording.recording_open(conn, issue_id, NOW, lambda w: w != RECORDER.worker)
        assert recording.take_recording(conn, issue_id, later, lambda w: w != RECORDER.worker)
        too_late = recording.Recorder("host:3:c", lambda: NOW + LEASE * 2, LEASE)
        assert recording.take_recording(conn, issue_id, too_late, lambda w: True)
