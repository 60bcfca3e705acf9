"""The ledger's batches and leases, on SQLite and (with DIGEST_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, case, func, insert, select
from sqlalchemy.exc import IntegrityError

from digest import db, repository
from digest.models import Topic
from digest.segment import encode_key, segmentation
from digest.send import ledger, local_worker_alive, worker_id
from subscribers.models import Status
from subscribers.store import SubscriberStore

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def issue_with_batches(engine: Engine, readers: int = 10, batch_size: int = 4) -> int:
    with engine.begin() as conn:
        repository.sync_topics(conn, [Topic("data", "Data")])
        store = SubscriberStore(conn)
        ids = [
            store.add(f"r{i}@example.com", "", frozenset({"data"}), NOW, "test").id
            for i in range(readers)
        ]
        issue_id = issue_being_recorded(conn)
    assert record(engine, issue_id, batch_size) == readers
    with engine.connect() as conn:
        sizes = conn.execute(
            select(db.send_batches.c.size).where(db.send_batches.c.issue_id == issue_id)
        ).scalars()
        assert list(sizes) == [batch_size] * (readers // batch_size) + [readers % batch_size] * (
            readers % batch_size > 0
        )
        d = db.deliveries.c
        recorded = conn.execute(
            select(d.subscriber_id).order_by(d.batch_id, d.subscriber_id)
        ).scalars()
        assert list(recorded) == ids  # the first batch holds the first readers, and so on
        assert ledger.recorded(conn, issue_id)
    return int(issue_id)


RECORDER = ledger.Recorder("host:1:recorder", lambda: NOW, LEASE)


def issue_being_recorded(conn: Connection) -> int:
    """A planned issue, which RECORDER has just started to record."""
    issue_id = conn.execute(
        insert(db.issues)
        .values(digest="weekly", number=1, status="planned", cutoff=NOW, created_at=NOW)
        .returning(db.issues.c.id)
    ).scalar_one()
    assert ledger.take_recording(conn, issue_id, RECORDER, lambda w: True)
    return int(issue_id)


def record(engine: Engine, issue_id: int, batch_size: int, **options: Any) -> int:
    with engine.connect() as conn:
        with conn.begin():
            found = segmentation(conn, ["data"], NOW)
        assert found is not None
        return ledger.record(
            conn,
            issue_id,
            found.addressed,
            lambda _: "data",
            batch_size,
            RECORDER,
            **options,
        )


def test_a_live_workers_lease_is_respected_a_dead_or_late_one_is_not(engine: Engine) -> None:
    issue_id = issue_with_batches(engine)
    with engine.begin() as conn:
        first = ledger.claim(conn, issue_id, 1, "host:1:a", NOW, NOW + LEASE)
        second = ledger.claim(conn, issue_id, 1, "host:2:b", NOW, NOW + LEASE)
        assert len(first) == len(second) == 1 and first[0].id != second[0].id
        # Another worker joining: both holders are alive and within their lease.
        assert ledger.expire(conn, issue_id, NOW + timedelta(minutes=1), lambda w: True) == 0
        assert ledger.open_batches(conn, issue_id)[ledger.SUBMITTING] == 2
        # The first holder's process is gone: its batch (4 deliveries) is ambiguous at once.
        gone = ledger.expire(conn, issue_id, NOW, lambda w: w != "host:1:a")
        assert gone == 4
        # The second holder outlives its lease: ambiguous too.
        assert ledger.expire(conn, issue_id, NOW + LEASE, lambda w: True) == 4
        counts = ledger.counts(conn, issue_id)
        assert counts == {ledger.AMBIGUOUS: 8, ledger.PENDING: 2}
        assert ledger.ambiguities(conn, issue_id) == 8
        assert ledger.requeue_ambiguous(conn, issue_id, NOW) == 8
        assert ledger.open_batches(conn, issue_id)[ledger.PENDING] == 3


def test_an_outcome_marks_the_batch_and_each_delivery_once(engine: Engine) -> None:
    issue_id = issue_with_batches(engine, readers=4)
    with engine.begin() as conn:
        (batch,) = ledger.claim(conn, issue_id, 5, "w", NOW, NOW + LEASE)
        members = ledger.members(conn, batch.id, NOW)
        assert ledger.counts(conn, issue_id) == {ledger.SUBMITTING: 4}
        refused = {members[0].subscriber_id: "refused by the provider"}
        assert ledger.settle(conn, [(batch, refused)], NOW) == [3]
        assert ledger.counts(conn, issue_id) == {ledger.SUBMITTED: 3, ledger.FAILED: 1}
        assert not ledger.open_batches(conn, issue_id)
        assert ledger.claim(conn, issue_id, 5, "w", NOW, NOW + LEASE) == []
        # Only the delivery that differs from its batch has an outcome of its own.
        d = db.deliveries.c
        query = select(d.subscriber_id, d.error).where(d.status.is_not(None))
        own = dict(list(conn.execute(query)))
        assert own == {members[0].subscriber_id: "refused by the provider"}


def test_batches_are_leased_read_and_settled_together_and_given_back_unsent(
    engine: Engine,
) -> None:
    issue_id = issue_with_batches(engine, readers=10)
    with engine.begin() as conn:
        first, second, third = ledger.claim(conn, issue_id, 3, "w", NOW, NOW + LEASE)
        found = {b.id: ledger.members(conn, b.id, NOW) for b in (first, second, third)}
        assert [len(found[b.id]) for b in (first, second, third)] == [4, 4, 2]
        everyone = {m.subscriber_id for people in found.values() for m in people}
        assert len(everyone) == 10
        ledger.unclaim(conn, [third.id], "w", NOW)  # leased ahead, never handed over
        refused = {found[second.id][0].subscriber_id: "refused by the provider"}
        assert ledger.settle(conn, [(first, {}), (second, refused)], NOW) == [4, 3]
        assert ledger.counts(conn, issue_id) == {
            ledger.SUBMITTED: 7,
            ledger.FAILED: 1,
            ledger.PENDING: 2,
        }
        (again,) = ledger.claim(conn, issue_id, 3, "other", NOW, NOW + LEASE)
        assert again.id == third.id
        attempts = select(db.send_batches.c.attempts).where(db.send_batches.c.id == third.id)
        assert conn.execute(attempts).scalar_one() == 1  # giving back cost no attempt


def test_a_resent_ambiguous_batch_keeps_its_audit_and_ends_submitted(engine: Engine) -> None:
    issue_id = issue_with_batches(engine, readers=4)
    with engine.begin() as conn:
        (batch,) = ledger.claim(conn, issue_id, 1, "w", NOW, NOW + LEASE)
        assert ledger.mark_unknown(conn, batch.id, "no answer", NOW) == 4
        assert ledger.requeue_ambiguous(conn, issue_id, NOW) == 4
        assert ledger.counts(conn, issue_id) == {ledger.PENDING: 4}
        assert ledger.ambiguities(conn, issue_id) == 4
        (again,) = ledger.claim(conn, issue_id, 1, "w", NOW, NOW + LEASE)
        assert again.id == batch.id
        assert ledger.mark_unknown(conn, batch.id, "no answer again", NOW) == 4
        ledger.requeue_ambiguous(conn, issue_id, NOW)
        (third,) = ledger.claim(conn, issue_id, 1, "w", NOW, NOW + LEASE)
        third_member = ledger.members(conn, third.id, NOW)[0].subscriber_id
        assert ledger.settle(conn, [(third, {third_member: "no longer active"})], NOW) == [3]
        assert ledger.counts(conn, issue_id) == {ledger.SUBMITTED: 3, ledger.FAILED: 1}
        # The first holder's answer arrives late: accepted too, the failure stays its own.
        assert ledger.settle(conn, [(batch, {})], NOW) == [3]
        assert ledger.counts(conn, issue_id) == {ledger.SUBMITTED: 3, ledger.FAILED: 1}
        assert ledger.ambiguities(conn, issue_id) == 8


def test_an_issue_is_recorded_once(engine: Engine) -> None:
    issue_id = issue_with_batches(engine, readers=2)
    with engine.begin() as conn:
        # Recorded: nobody takes the recording again, and a late recorder writes nothing.
        assert not ledger.take_recording(conn, issue_id, RECORDER, lambda w: False)
    assert record(engine, issue_id, 4) == 0
    with engine.connect() as conn:
        assert sum(ledger.counts(conn, issue_id).values()) == 2
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
        repository.sync_topics(conn, [Topic("data", "Data"), Topic("ai", "AI")])
        store = SubscriberStore(conn)
        for i in range(30):
            topics = [frozenset({"data"}), frozenset({"ai"}), frozenset({"data", "ai"})][i % 3]
            store.add(f"r{i}@example.com", "", topics, NOW, "test")
        issue_id = issue_being_recorded(conn)

    def record_as(recorder: ledger.Recorder, groups_allowed: int) -> int:
        allowed = iter(range(groups_allowed))
        with engine.connect() as conn:
            with conn.begin():
                found = segmentation(conn, ["data", "ai"], NOW)
            assert found is not None
            return ledger.record(
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
        assert not ledger.recorded(conn, issue_id)
        # Its lease was let go when it stopped: another worker takes over at once.
        assert not ledger.recording_open(conn, issue_id, NOW, lambda w: True)
        other = ledger.Recorder("host:2:other", lambda: NOW, LEASE)
        assert ledger.take_recording(conn, issue_id, other, lambda w: True)
        # The first recorder, back, no longer holds the recording.
        assert not ledger.take_recording(conn, issue_id, RECORDER, lambda w: True)
    assert record_as(RECORDER, 9) == 0
    assert record_as(other, 9) == 20
    with engine.connect() as conn:
        assert ledger.recorded(conn, issue_id)
        assert ledger.counts(conn, issue_id) == {ledger.PENDING: 30}
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
        repository.sync_topics(conn, [Topic("data", "Data")])
        store = SubscriberStore(conn)
        ids = [
            store.add(f"r{i}@example.com", "", frozenset({"data"}), NOW, "test").id
            for i in range(31)
        ]
        issue_id = issue_being_recorded(conn)
    s = db.subscribers.c
    written = case((s.id % 3 == 0, "a,b"), (s.id % 3 == 1, "b,a"), else_="a")
    members = select(s.id, written, s.email, s.name)
    with engine.connect() as conn:
        recorded = ledger.record(
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
        later = ledger.Recorder("host:2:b", lambda: NOW + timedelta(minutes=1), LEASE)
        assert ledger.recording_open(conn, issue_id, NOW, lambda w: True)
        assert not ledger.take_recording(conn, issue_id, later, lambda w: True)
        # Its process is gone (or its lease ran out): the recording is open to others.
        assert not ledger.recording_open(conn, issue_id, NOW, lambda w: w != RECORDER.worker)
        assert ledger.take_recording(conn, issue_id, later, lambda w: w != RECORDER.worker)
        too_late = ledger.Recorder("host:3:c", lambda: NOW + LEASE * 2, LEASE)
        assert ledger.take_recording(conn, issue_id, too_late, lambda w: True)


def test_worker_liveness_is_known_for_local_processes_only() -> None:
    assert local_worker_alive(worker_id())
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(finished.stdout)
    assert not local_worker_alive(f"{socket.gethostname()}:{dead_pid}:x")
    assert local_worker_alive(f"elsewhere.example:{dead_pid}:x")


def test_a_batch_goes_to_the_recorded_addresses_of_those_who_may_still_get_email(
    engine: Engine,
) -> None:
    """Sending reads the address a delivery was recorded for, and skips whoever has since
    unsubscribed or paused (until a pause is over), found through the small index of
    subscribers who may not get email, not by reading every recipient's row."""
    issue_id = issue_with_batches(engine, readers=5, batch_size=5)
    with engine.begin() as conn:
        store = SubscriberStore(conn)
        ids = [s.id for s in store.iterate()]
        store.update(ids[0], NOW, email="new0@example.com", name="Zero")
        store.set_status_of(ids[1], Status.UNSUBSCRIBED, NOW)
        store.update(ids[2], NOW, paused_until=NOW + timedelta(days=1))
        store.update(ids[3], NOW, paused_until=NOW - timedelta(days=1))
        (batch,) = ledger.claim(conn, issue_id, 1, "host:1:a", NOW, NOW + LEASE)
    with engine.connect() as conn:
        got = sorted(ledger.members(conn, batch.id, NOW))
        assert [(m.email, m.name, m.active) for m in got] == [
            ("r0@example.com", "", True),  # the address the issue was recorded for
            ("r1@example.com", "", False),
            ("r2@example.com", "", False),
            ("r3@example.com", "", True),  # the pause is over
            ("r4@example.com", "", True),
        ]
        dialect = conn.dialect.name
        explain = "EXPLAIN QUERY PLAN" if dialect == "sqlite" else "EXPLAIN"
        marker = "?" if dialect == "sqlite" else "%s"
        query = f"{explain} {ledger.members_query(dialect, marker)}"
        plan = conn.exec_driver_sql(query, (ledger._bound(conn, NOW), batch.id))
        assert "ix_subscribers_unsendable" in " ".join(str(row) for row in plan)
