"""Issues recorded for the ledger's tests (:mod:`tests.digest.send.test_recording`,
:mod:`tests.digest.send.test_leases`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from digest import db, segment
from digest.models import Topic
from digest.send import recording
from digest.stores import posts as post_store
from subscribers.store import SubscriberStore

NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
LEASE = timedelta(minutes=10)


def issue_with_batches(engine: Engine, readers: int = 10, batch_size: int = 4) -> int:
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("data", "Data")])
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
        assert recording.recorded(conn, issue_id)
    return int(issue_id)


RECORDER = recording.Recorder("host:1:recorder", lambda: NOW, LEASE)


def issue_being_recorded(conn: Connection) -> int:
    """A planned issue, which RECORDER has just started to record."""
    issue_id = conn.execute(
        insert(db.issues)
        .values(digest="weekly", number=1, status="planned", cutoff=NOW, created_at=NOW)
        .returning(db.issues.c.id)
    ).scalar_one()
    assert recording.take_recording(conn, issue_id, RECORDER, lambda w: True)
    return int(issue_id)


def record(engine: Engine, issue_id: int, batch_size: int, **options: Any) -> int:
    with engine.connect() as conn:
        with conn.begin():
            segmentation = segment.segmentation(conn, ["data"], NOW)
        assert segmentation is not None
        return recording.record(
            conn,
            issue_id,
            segmentation.addressed,
            lambda _: "data",
            batch_size,
            RECORDER,
            **options,
        )
