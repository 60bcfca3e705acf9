"""The ledger's leases and outcomes, on SQLite and (with DIGEST_TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, select

from digest import db
from digest.send import leases, ledger, reporting
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.digest.send.ledger_fixtures import LEASE, NOW, issue_with_batches


def test_a_live_workers_lease_is_respected_a_dead_or_late_one_is_not(engine: Engine) -> None:
    issue_id = issue_with_batches(engine)
    with engine.begin() as conn:
        first = leases.claim(conn, issue_id, 2, "host:1:a", NOW, NOW + LEASE)
        second = leases.claim(conn, issue_id, 1, "host:2:b", NOW, NOW + LEASE)
        assert len(first) == 2 and len(second) == 1 and first[0].id != second[0].id
        # Each holder hands one batch to its transport; the first keeps one in reserve.
        assert leases.hand(conn, first[0].id, "host:1:a")
        assert leases.hand(conn, second[0].id, "host:2:b")
        assert not leases.hand(conn, first[1].id, "host:2:b")  # not b's to hand over
        # Another worker joining: both holders are alive and within their lease.
        assert leases.expire(conn, issue_id, NOW + timedelta(minutes=1), lambda w: True) == 0
        held = reporting.open_batches(conn, issue_id)
        assert held == {ledger.SUBMITTING: 1, ledger.HANDED: 2}
        # The first holder's process is gone: the batch it handed over (4 deliveries) is
        # ambiguous at once; the one in its reserve was never handed over: pending again.
        gone = leases.expire(conn, issue_id, NOW, lambda w: w != "host:1:a")
        assert gone == 4
        assert reporting.counts(conn, issue_id) == {
            ledger.AMBIGUOUS: 4,
            ledger.HANDED: 2,  # the last batch, of 2
            ledger.PENDING: 4,
        }
        # The second holder outlives its lease: ambiguous too.
        assert leases.expire(conn, issue_id, NOW + LEASE, lambda w: True) == 2
        counts = reporting.counts(conn, issue_id)
        assert counts == {ledger.AMBIGUOUS: 6, ledger.PENDING: 4}
        assert reporting.ambiguities(conn, issue_id) == 6
        assert leases.requeue_ambiguous(conn, issue_id, NOW) == 6
        assert reporting.open_batches(conn, issue_id)[ledger.PENDING] == 3
        attempts = select(db.send_batches.c.attempts).where(db.send_batches.c.id == first[1].id)
        assert conn.execute(attempts).scalar_one() == 0  # the reserve cost no attempt


def test_a_stopped_worker_releases_what_it_handed_over_as_ambiguous_the_rest_as_pending(
    engine: Engine,
) -> None:
    issue_id = issue_with_batches(engine, readers=10)
    with engine.begin() as conn:
        handed, reserve, _ = leases.claim(conn, issue_id, 3, "w", NOW, NOW + LEASE)
        assert leases.hand(conn, handed.id, "w")
        assert leases.release(conn, issue_id, "w", "send interrupted", NOW) == 4
        assert reporting.counts(conn, issue_id) == {ledger.AMBIGUOUS: 4, ledger.PENDING: 6}
        assert not reporting.open_batches(conn, issue_id)[ledger.SUBMITTING]
        again = leases.claim(conn, issue_id, 3, "v", NOW, NOW + LEASE)
        assert reserve.id in {b.id for b in again} and handed.id not in {b.id for b in again}


def test_a_batch_split_where_its_transport_stopped_keeps_every_delivery_once(
    engine: Engine,
) -> None:
    issue_id = issue_with_batches(engine, readers=4)
    with engine.begin() as conn:
        (batch,) = leases.claim(conn, issue_id, 1, "w", NOW, NOW + LEASE)
        assert leases.hand(conn, batch.id, "w")
        ids = [m.subscriber_id for m in leases.members(conn, batch.id, NOW)]
        # Written: ids[0]; never handed over: ids[1], ids[2]; on its way: ids[3].
        left = leases.split_off(conn, issue_id, batch, ids[1:3], NOW)
        left = leases.split_off(conn, issue_id, left, ids[3:], NOW, unknown="no answer")
        assert left.size == 1
        assert leases.settle(conn, [(left, {})], NOW) == [1]
        assert reporting.counts(conn, issue_id) == {
            ledger.SUBMITTED: 1,
            ledger.PENDING: 2,
            ledger.AMBIGUOUS: 1,
        }
        assert reporting.ambiguities(conn, issue_id) == 1
        (pending,) = leases.claim(conn, issue_id, 5, "w", NOW, NOW + LEASE)
        assert [m.subscriber_id for m in leases.members(conn, pending.id, NOW)] == ids[1:3]
        sizes = select(func.sum(db.send_batches.c.size)).where(
            db.send_batches.c.issue_id == issue_id
        )
        assert conn.execute(sizes).scalar_one() == 4


def test_an_outcome_marks_the_batch_and_each_delivery_once(engine: Engine) -> None:
    issue_id = issue_with_batches(engine, readers=4)
    with engine.begin() as conn:
        (batch,) = leases.claim(conn, issue_id, 5, "w", NOW, NOW + LEASE)
        members = leases.members(conn, batch.id, NOW)
        assert reporting.counts(conn, issue_id) == {ledger.SUBMITTING: 4}
        refused = {members[0].subscriber_id: "refused by the provider"}
        assert leases.settle(conn, [(batch, refused)], NOW) == [3]
        assert reporting.counts(conn, issue_id) == {ledger.SUBMITTED: 3, ledger.FAILED: 1}
        assert not reporting.open_batches(conn, issue_id)
        assert leases.claim(conn, issue_id, 5, "w", NOW, NOW + LEASE) == []
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
        first, second, third = leases.claim(conn, issue_id, 3, "w", NOW, NOW + LEASE)
        found = {b.id: leases.members(conn, b.id, NOW) for b in (first, second, third)}
        assert [len(found[b.id]) for b in (first, second, third)] == [4, 4, 2]
        everyone = {m.subscriber_id for people in found.values() for m in people}
        assert len(everyone) == 10
        leases.unclaim(conn, [third.id], "w", NOW)  # leased ahead, never handed over
        refused = {found[second.id][0].subscriber_id: "refused by the provider"}
        assert leases.settle(conn, [(first, {}), (second, refused)], NOW) == [4, 3]
        assert reporting.counts(conn, issue_id) == {
            ledger.SUBMITTED: 7,
            ledger.FAILED: 1,
            ledger.PENDING: 2,
        }
        (again,) = leases.claim(conn, issue_id, 3, "other", NOW, NOW + LEASE)
        assert again.id == third.id
        attempts = select(db.send_batches.c.attempts).where(db.send_batches.c.id == third.id)
        assert conn.execute(attempts).scalar_one() == 1  # giving back cost no attempt


def test_a_resent_ambiguous_batch_keeps_its_audit_and_ends_submitted(engine: Engine) -> None:
    issue_id = issue_with_batches(engine, readers=4)
    with engine.begin() as conn:
        (batch,) = leases.claim(conn, issue_id, 1, "w", NOW, NOW + LEASE)
        assert leases.mark_unknown(conn, batch.id, "no answer", NOW) == 4
        assert leases.requeue_ambiguous(conn, issue_id, NOW) == 4
        assert reporting.counts(conn, issue_id) == {ledger.PENDING: 4}
        assert reporting.ambiguities(conn, issue_id) == 4
        (again,) = leases.claim(conn, issue_id, 1, "w", NOW, NOW + LEASE)
        assert again.id == batch.id
        assert leases.mark_unknown(conn, batch.id, "no answer again", NOW) == 4
        leases.requeue_ambiguous(conn, issue_id, NOW)
        (third,) = leases.claim(conn, issue_id, 1, "w", NOW, NOW + LEASE)
        third_member = leases.members(conn, third.id, NOW)[0].subscriber_id
        assert leases.settle(conn, [(third, {third_member: "no longer active"})], NOW) == [3]
        assert reporting.counts(conn, issue_id) == {ledger.SUBMITTED: 3, ledger.FAILED: 1}
        # The first holder's answer arrives late: accepted too, the failure stays its own.
        assert leases.settle(conn, [(batch, {})], NOW) == [3]
        assert reporting.counts(conn, issue_id) == {ledger.SUBMITTED: 3, ledger.FAILED: 1}
        assert reporting.ambiguities(conn, issue_id) == 8


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
        (batch,) = leases.claim(conn, issue_id, 1, "host:1:a", NOW, NOW + LEASE)
    with engine.connect() as conn:
        got = sorted(leases.members(conn, batch.id, NOW))
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
        query = f"{explain} {leases.members_query(dialect, marker)}"
        plan = conn.exec_driver_sql(query, (ledger.bound(conn, NOW), batch.id))
        assert "ix_subscribers_unsendable" in " ".join(str(row) for row in plan)
