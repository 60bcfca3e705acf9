"""The ledger's figures: submitted per issue from the batch sizes equals the count over every
delivery, with deliveries of their own outcome inside submitted batches."""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from digest import db
from digest.app import gathering, sending
from digest.app.wiring import Project
from digest.config import Config
from digest.send import reporting
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock


def test_submitted_of_equals_the_count_over_every_delivery(
    example_config: Config, clock: FixedClock, engine: Engine
) -> None:
    project = Project.open(example_config, clock=clock, engine=engine)
    gathering.gather_sources(project)
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        for i in range(7):
            store.add(f"r{i}@example.com", "", frozenset({"backend"}), clock(), "test")
    planned, _ = sending.send(project, force=True, by="test")
    assert planned is not None and planned.issue.id is not None
    issue = planned.issue.id
    with project.transaction() as conn:
        some = (
            conn.execute(
                select(db.deliveries.c.subscriber_id).where(db.deliveries.c.issue_id == issue)
            )
            .scalars()
            .all()[:2]
        )
        conn.execute(
            update(db.deliveries)
            .where(db.deliveries.c.issue_id == issue, db.deliveries.c.subscriber_id.in_(some))
            .values(status="failed", error="refused")
        )
    with project.reading() as conn:
        counted = reporting.counts(conn, issue)
        quick = reporting.submitted_of(conn, [issue, issue + 1000])
    assert counted["submitted"] == 5 and counted["failed"] == 2
    assert quick == {issue: 5, issue + 1000: 0}
