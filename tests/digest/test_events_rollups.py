"""Events in bulk, on SQLite and PostgreSQL: a replay changes nothing, the order events come in
does not matter, the rollups equal a recount from the raw events, and pruning keeps them; the
same through the webhook's inbox (staged, then drained many batches at once), across a crash
between staging and draining and one inside a drain."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select, update

from digest import db
from digest.app import feedback, gathering
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import Config
from digest.events import apply_events, issue_counts, prune
from digest.stores import engagement
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock

READERS = [f"reader{i}@example.com" for i in range(6)]
KINDS = ["processed", "delivered", "deferred", "open", "click", "bounce", "unsubscribe"]
ROLLUP_TABLES = (
    db.events,
    db.event_counts,
    db.event_firsts,
    db.event_post_clicks,
    db.event_post_firsts,
)


class Sent:
    """A sent issue of the example site, its posts' URLs, and readers to send events for."""

    def __init__(self, project: Project) -> None:
        self.project = project
        gathering.gather_sources(project)
        planned = issue_cases.plan(project, without_readers=True)
        assert planned is not None and planned.issue.id is not None
        self.issue = planned.issue.id
        with project.transaction() as conn:
            conn.execute(
                update(db.issues)
                .where(db.issues.c.id == self.issue)
                .values(status="sent", sent_at=project.clock())
            )
            self.links = dict(engagement.post_links(conn, self.issue))
            store = SubscriberStore(conn)
            self.readers = {
                email: store.add(email, "", frozenset({"backend"}), project.clock(), "test").id
                for email in READERS
            }
        self.serial = 0

    def event(self, kind: str, reader: int = 0, **extra: Any) -> dict[str, Any]:
        self.serial += 1
        email = READERS[reader]
        return {
            "event": kind,
            "email": email,
            "sg_event_id": f"ev-{self.serial}",
            "timestamp": int(self.project.clock().timestamp()) + self.serial,
            "issue_id": str(self.issue),
            "subscriber_id": str(self.readers[email]),
            **extra,
        }

    def apply(self, events: list[dict[str, Any]]) -> None:
        with self.project.transaction() as conn:
            apply_events(conn, events, self.project.clock(), link_of=feedback.PostLinks(conn))

    def stage(self, events: list[dict[str, Any]]) -> None:
        """The webhook's way after the signature: staged now, applied by the next drain."""
        feedback.stage_events(self.project, events)

    def staged(self) -> int:
        return feedback.staged_events(self.project)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with self.project.reading() as conn:
            tables = {
                t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in ROLLUP_TABLES
            }
            tables["subscribers"] = sorted(
                tuple(r) for r in conn.execute(select(db.metadata.tables["subscribers"]))
            )
        return tables

    def clear(self) -> None:
        with self.project.transaction() as conn:
            for table in ROLLUP_TABLES:
                conn.execute(delete(table))


@pytest.fixture
def sent(example_config: Config, clock: FixedClock, engine: Engine) -> Sent:
    return Sent(Project.open(example_config, clock=clock, engine=engine))


def recount(sent: Sent) -> tuple[Counter[str], dict[int, tuple[int, int]]]:
    """The figures counted again from the raw events, the slow way."""
    with sent.project.reading() as conn:
        rows = list(conn.execute(select(db.events).where(db.events.c.issue_id == sent.issue)))
    counts: Counter[str] = Counter(
        "bounce" if row.event == "bounce_blocked" else row.event for row in rows
    )
    for kind in ("open", "click"):
        readers = {row.email.lower() for row in rows if row.event == kind}
        if readers:
            counts[f"unique_{kind}"] = len(readers)
    clicks = [row for row in rows if row.event == "click" and row.post_id]
    posts = {
        post: (
            sum(row.post_id == post for row in clicks),
            len({row.email.lower() for row in clicks if row.post_id == post}),
        )
        for post in {row.post_id for row in clicks}
    }
    return counts, posts


def rollups(sent: Sent) -> tuple[Counter[str], dict[int, tuple[int, int]]]:
    """The figures as the rollups hold them: per kind, and (clicks, readers) per post."""
    table = db.event_post_clicks
    with sent.project.reading() as conn:
        counts = issue_counts(conn, sent.issue)
        posts = {
            int(p): (int(n), int(readers))
            for p, n, readers in conn.execute(
                select(table.c.post_id, table.c.clicks, table.c.readers).where(
                    table.c.issue_id == sent.issue
                )
            )
        }
    return counts, posts


def test_a_replayed_batch_changes_nothing(sent: Sent) -> None:
    post, url = next(iter(sent.links.items()))
    batch = [
        sent.event("processed"),
        sent.event("delivered"),
        sent.event("open"),
        sent.event("open"),
        sent.event("click", url=url + "?utm_source=digest#top"),
        sent.event("bounce", reader=1, type="bounce"),
        sent.event("spamreport", reader=2),
        sent.event("unsubscribe", reader=3),
    ]
    sent.apply(batch)
    first = sent.snapshot()
    sent.apply(batch)
    sent.apply(list(reversed(batch)))
    assert sent.snapshot() == first
    counts, posts = rollups(sent)
    assert counts["open"] == 2 and counts["unique_open"] == 1
    assert counts["click"] == 1 and counts["unique_click"] == 1
    assert posts == {post: (1, 1)}
    statuses = {email: status_of(sent, email) for email in READERS[:4]}
    assert statuses == {
        READERS[0]: Status.ACTIVE,
        READERS[1]: Status.BOUNCED,
        READERS[2]: Status.COMPLAINED,
        READERS[3]: Status.UNSUBSCRIBED,
    }


def status_of(sent: Sent, email: str) -> Status:
    with sent.project.reading() as conn:
        found = SubscriberStore(conn).get(email)
    assert found is not None
    return found.status


def test_a_batch_staged_twice_or_again_after_its_drain_changes_nothing(sent: Sent) -> None:
    post, url = next(iter(sent.links.items()))
    batch = [
        sent.event("processed"),
        sent.event("open"),
        sent.event("click", url=url),
        sent.event("bounce", reader=1, type="bounce"),
        sent.event("unsubscribe", reader=3),
    ]
    sent.stage(batch)
    sent.stage(batch)  # SendGrid's retry, staged before the first is drained
    assert sent.snapshot()["events"] == [] and sent.staged() == 10
    drained = feedback.drain(sent.project)
    assert (drained.batches, sum(drained.report.applied.values())) == (2, 5)
    assert (drained.report.duplicates, drained.report.suppressed) == (5, 2)
    first = sent.snapshot()
    sent.stage(list(reversed(batch)))
    assert feedback.drain(sent.project).report.duplicates == 5
    assert sent.snapshot() == first and sent.staged() == 0
    assert rollups(sent)[1] == {post: (1, 1)}
    assert status_of(sent, READERS[1]) is Status.BOUNCED
    assert status_of(sent, READERS[3]) is Status.UNSUBSCRIBED


def test_batches_staged_before_a_crash_are_applied_once_after_it(
    sent: Sent, example_config: Config, clock: FixedClock
) -> None:
    """The server stopped (or the machine) after answering, before draining: the batches wait
    in the inbox, and the next process's drain (at its start) applies them, once."""
    batch = [sent.event("delivered"), sent.event("spamreport", reader=2)]
    sent.stage(batch)
    sent.project.inbox().dispose()
    url = sent.project.engine.url.render_as_string(hide_password=False)
    restarted = Project(example_config, db.make_engine(url), clock)
    assert feedback.staged_events(restarted) == 2
    assert sum(feedback.drain(restarted).report.applied.values()) == 2
    assert feedback.drain(restarted).batches == 0
    assert status_of(sent, READERS[2]) is Status.COMPLAINED
    assert rollups(sent)[0] == {"delivered": 1, "spamreport": 1}


def test_the_servers_drain_thread_applies_what_was_staged_before_it_and_until_it_stops(
    sent: Sent,
) -> None:
    sent.stage([sent.event("delivered")])  # before the server started (or before a crash)
    drainer = feedback.Drainer(sent.project)
    drainer.start()
    sent.stage([sent.event("unsubscribe", reader=3)])
    drainer.wake()
    assert drainer.close(timeout=60)  # its last drain takes what was staged before
    assert sent.staged() == 0
    assert rollups(sent)[0] == {"delivered": 1, "unsubscribe": 1}
    assert status_of(sent, READERS[3]) is Status.UNSUBSCRIBED


def test_a_crash_inside_a_drain_loses_nothing_and_counts_nothing_twice(sent: Sent) -> None:
    """On SQLite the inbox is a file of its own: a drain commits the events, then deletes what
    it applied from the inbox. A crash between the two leaves the batch staged and applied;
    the next drain finds every event stored and changes nothing. (A crash before the commit
    leaves nothing applied: the batch is simply still staged.)"""
    url = next(iter(sent.links.values()))
    batch = [sent.event("open"), sent.event("click", url=url), sent.event("bounce", reader=1)]
    sent.stage(batch)
    with sent.project.inbox().connect() as conn:
        left = engagement.staged(conn, 100, 100)
    feedback.drain(sent.project)
    applied = sent.snapshot()
    with sent.project.inbox().begin() as conn:  # as the inbox was before the delete
        for staged in left:
            engagement.stage(conn, staged.received_at, len(batch), staged.rows)
    again = feedback.drain(sent.project)
    assert (sum(again.report.applied.values()), again.report.duplicates) == (0, 3)
    assert sent.snapshot() == applied and sent.staged() == 0


def test_an_out_of_order_batch_counts_as_the_ordered_one(sent: Sent) -> None:
    """SendGrid does not promise order: delivered before processed, a click before the open,
    the complaint before the bounce. The figures and the final statuses are the same."""
    url = next(iter(sent.links.values()))
    ordered = [
        sent.event("processed"),
        sent.event("delivered"),
        sent.event("open"),
        sent.event("click", url=url),
        sent.event("processed", reader=1),
        sent.event("bounce", reader=1, type="bounce"),
        sent.event("spamreport", reader=1),
    ]
    sent.apply(ordered)
    in_order = rollups(sent), status_of(sent, READERS[1])
    sent.clear()
    with sent.project.transaction() as conn:
        SubscriberStore(conn).set_status_of(
            sent.readers[READERS[1]], Status.ACTIVE, sent.project.clock()
        )
    sent.apply(ordered[::-1][:4])  # the second reader's complaint, bounce, processed, the click
    sent.apply(ordered[::-1][4:])  # then the open, delivered and processed of the first
    assert (rollups(sent), status_of(sent, READERS[1])) == in_order
    assert in_order[1] is Status.COMPLAINED
    assert in_order[0][0]["delivered"] == 1 and in_order[0][0]["bounce"] == 1


def batches_of(
    draw: Callable[[st.SearchStrategy[Any]], Any], sent: Sent
) -> list[list[dict[str, Any]]]:
    links = list(sent.links.values())
    events = []
    for _ in range(draw(st.integers(0, 40))):
        kind = draw(st.sampled_from(KINDS))
        reader = draw(st.integers(0, len(READERS) - 1))
        extra: dict[str, Any] = {}
        if kind == "click":
            extra["url"] = draw(st.sampled_from([*links, "https://elsewhere.example/"]))
        if kind == "bounce":
            extra["type"] = draw(st.sampled_from(["bounce", "blocked"]))
        events.append(sent.event(kind, reader, **extra))
    # SendGrid retries: some events come again, in other batches, in any order.
    again = draw(st.lists(st.sampled_from(events), max_size=10)) if events else []
    stream = draw(st.permutations(events + again))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_rollups_equal_a_recount_from_the_raw_events(sent: Sent, data: st.DataObject) -> None:
    sent.clear()
    batches = batches_of(data.draw, sent)
    for batch in batches:
        sent.apply(batch)
    assert rollups(sent) == recount(sent)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_through_the_inbox_the_rollups_equal_a_recount_and_the_direct_way(
    sent: Sent, data: st.DataObject
) -> None:
    """Staged and drained at any points (several batches in one drain, or one each), the
    figures are a recount of the raw events, and the same as each batch applied at once."""
    batches = batches_of(data.draw, sent)
    # Drawn before anything is staged: Hypothesis may end an example at any draw, which
    # would leave batches staged for the next example to apply.
    drain_after = [data.draw(st.booleans()) for _ in batches]
    sent.clear()
    for batch in batches:
        sent.apply(batch)
    direct = rollups(sent)
    sent.clear()
    for batch, drain in zip(batches, drain_after, strict=True):
        sent.stage(batch)
        if drain:
            feedback.drain(sent.project)
    feedback.drain(sent.project)
    assert sent.staged() == 0
    assert rollups(sent) == recount(sent) == direct


def test_pruning_keeps_the_figures_and_a_late_open_counts_no_reader_twice(sent: Sent) -> None:
    project, clock = sent.project, sent.project.clock
    post, url = next(iter(sent.links.items()))
    sent.apply(
        [
            sent.event("open"),
            sent.event("open", reader=1),
            sent.event("delivered"),
            sent.event("click", url=url),
        ]
    )
    before = rollups(sent)
    assert before[1] == {post: (1, 1)}
    assert isinstance(project.clock, FixedClock)
    project.clock.now += timedelta(days=31)
    with project.transaction() as conn:
        pruned = prune(conn, clock(), keep_days=30)
        left = engagement.raw_count(conn)
    assert (pruned.events, pruned.readers, left) == (4, 3, 0)
    assert rollups(sent) == before
    # A reader who opened and clicked before does so again now: an open and a click, but no
    # new reader, of the issue or of the post.
    sent.apply([sent.event("open"), sent.event("click", url=url)])
    counts, posts = rollups(sent)
    assert counts["open"] == before[0]["open"] + 1
    assert counts["unique_open"] == before[0]["unique_open"] == 2
    assert posts == {post: (2, 1)}
    with project.reading() as conn:
        for table in (db.event_firsts, db.event_post_firsts):
            assert conn.execute(select(func.count()).select_from(table)).scalar() == 0


def test_pruning_during_ingest_is_bounded_by_the_batch(sent: Sent) -> None:
    project = sent.project
    sent.apply([sent.event("processed", reader=i % len(READERS)) for i in range(30)])
    assert isinstance(project.clock, FixedClock)
    project.clock.now += timedelta(days=40)
    with project.transaction() as conn:
        first = prune(conn, project.clock(), 30, limit=12)
        second = prune(conn, project.clock(), 30, limit=100)
    assert (first.events, second.events) == (12, 18)


def test_what_does_not_fit_a_column_is_left_out_not_a_database_error(sent: Sent) -> None:
    """A signed batch may still carry anything: ids too long for their column, numbers past
    32 bits, times no timestamp holds. The batch applies; the odd values do not reach the
    database (where PostgreSQL would refuse the whole batch)."""
    odd = [
        sent.event("delivered", sg_event_id="x" * 201),
        sent.event("delivered", email="a" * 321),
        sent.event("delivered", sg_event_id=["not", "a", "string"]),
        sent.event("open", issue_id="99999999999", subscriber_id="²"),
        sent.event("open", issue_id=2**40, timestamp=10**20),
        sent.event("open", timestamp="1790000000.5"),
        sent.event("open", timestamp=None),
        sent.event("made-up-kind"),
    ]
    with sent.project.transaction() as conn:
        report = apply_events(conn, odd, sent.project.clock())
    assert report.ignored == 4 and sum(report.applied.values()) == 4
    with sent.project.reading() as conn:
        rows = {
            r.sg_event_id: r
            for r in conn.execute(select(db.events).where(db.events.c.event == "open"))
        }
    assert [rows[e["sg_event_id"]].issue_id for e in odd[3:5]] == [None, None]
    assert rows[odd[3]["sg_event_id"]].subscriber_id is None
    assert rows[odd[4]["sg_event_id"]].occurred_at == sent.project.clock()
    assert rows[odd[5]["sg_event_id"]].occurred_at.timestamp() == 1790000000
    assert rows[odd[6]["sg_event_id"]].occurred_at == sent.project.clock()
