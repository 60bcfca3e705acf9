"""Issue approval, skipped issues and the schedule log, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from digest import db
from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import Config
from digest.errors import ApprovalError
from digest.lifecycle import Approval, IssueStatus
from digest.stores import issues as issue_store
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock

SLOT = datetime(2026, 11, 23, 7, tzinfo=UTC)


@pytest.fixture
def project(example_config: Config, clock: FixedClock, engine: Engine) -> Project:
    project = Project.open(example_config, clock=clock, engine=engine)
    gathering.gather_sources(project)
    topics = frozenset(t.slug for t in project.topics())
    with engine.begin() as conn:  # somebody to plan for: an issue for nobody is refused
        SubscriberStore(conn).add("r@example.com", "", topics, clock(), "t")
    return project


def row(project: Project, issue_id: int) -> issue_store.IssueRow:
    with project.engine.connect() as conn:
        return issue_store.issue_row(conn, issue_id)


def test_an_issue_remembers_its_slot_and_a_second_plan_for_the_slot_gets_it_back(
    project: Project,
) -> None:
    first = issue_cases.plan(project, slot=SLOT, approval=Approval.PENDING)
    assert first is not None and first.created and first.issue.id is not None
    again = issue_cases.plan(project, slot=SLOT)
    assert again is not None and not again.created and again.issue.id == first.issue.id
    saved = row(project, first.issue.id)
    assert saved.slot == SLOT and saved.approval == Approval.PENDING


def test_the_database_refuses_a_second_issue_for_one_slot(project: Project) -> None:
    planned = issue_cases.plan(project, slot=SLOT)
    assert planned is not None
    with pytest.raises(IntegrityError), project.engine.begin() as conn:
        conn.execute(
            insert(db.issues).values(
                digest="weekly",
                number=99,
                status="planned",
                cutoff=SLOT,
                created_at=SLOT,
                slot=SLOT,
            )
        )


def test_set_approval_records_who_and_when_and_refuses_unknown_values(
    project: Project, clock: FixedClock
) -> None:
    planned = issue_cases.plan(project)
    assert planned is not None and planned.issue.id is not None
    issue_id = planned.issue.id
    with project.engine.begin() as conn:
        issue_store.set_approval(
            conn, issue_id, "approved", "ed@example.com", clock(), "looks good"
        )
    saved = row(project, issue_id)
    assert (saved.approval, saved.approval_by, saved.approval_at, saved.approval_note) == (
        "approved",
        "ed@example.com",
        clock(),
        "looks good",
    )
    with pytest.raises(ApprovalError, match="unknown approval 'yes'"), project.engine.begin() as c:
        issue_store.set_approval(c, issue_id, "yes", "ed@example.com", clock())
    assert row(project, issue_id).approval == "approved"


def test_a_sent_issue_cannot_change_its_approval(project: Project, clock: FixedClock) -> None:
    planned, report = sending.send(project)
    assert planned is not None and planned.issue.id is not None and report is not None
    with pytest.raises(ApprovalError, match="is sent"), project.engine.begin() as conn:
        issue_store.set_approval(conn, planned.issue.id, "held", "ed@example.com", clock())


def test_a_skipped_issue_is_finished_and_its_posts_are_candidates_again(
    project: Project, clock: FixedClock
) -> None:
    skipped = issue_cases.plan(project, slot=SLOT)
    assert skipped is not None and skipped.issue.id is not None
    with project.engine.begin() as conn:
        issue_store.set_approval(conn, skipped.issue.id, "skipped", None, clock(), "not approved")
        assert issue_store.unfinished_issue(conn, "weekly") is None
        assert issue_store.posts_in_issues(conn, "weekly") == set()
        assert issue_store.last_issue(conn, "weekly") is None
    assert row(project, skipped.issue.id).status == IssueStatus.SKIPPED
    with pytest.raises(ApprovalError, match="is skipped"), project.engine.begin() as conn:
        issue_store.set_approval(conn, skipped.issue.id, "approved", "ed@example.com", clock())

    clock.now += timedelta(days=7)
    following = issue_cases.plan(project, slot=SLOT + timedelta(days=7))
    assert following is not None and following.created
    # The same posts, under a new number: numbers are never reused, readers see a gap.
    assert following.issue.number == skipped.issue.number + 1
    assert {p.id for s in following.issue.sections for p in s.posts} == {
        p.id for s in skipped.issue.sections for p in s.posts
    }


def test_a_sent_issue_still_counts_after_a_later_one_is_skipped(
    project: Project, clock: FixedClock
) -> None:
    sent, _ = sending.send(project)
    assert sent is not None
    with project.engine.connect() as conn:
        in_sent = issue_store.posts_in_issues(conn, "weekly")
    assert in_sent
    clock.now += timedelta(days=7)
    assert (
        issue_cases.plan(project, slot=SLOT + timedelta(days=7)) is None
    )  # nothing new: nothing to skip
    with project.engine.connect() as conn:
        last = issue_store.last_issue(conn, "weekly")
        assert last is not None and last.id == sent.issue.id
        assert issue_store.posts_in_issues(conn, "weekly") == in_sent


def test_schedule_log_lists_newest_first_per_digest(project: Project) -> None:
    with project.engine.begin() as conn:
        for i, kind in enumerate(["ran", "missed", "skipped"]):
            at = SLOT + timedelta(days=7 * i)
            issue_store.log_schedule(conn, "weekly", at, kind, f"detail {i}", at)
        issue_store.log_schedule(conn, "other", SLOT, "ran", "", SLOT)
    with project.engine.connect() as conn:
        rows = issue_store.schedule_log(conn, "weekly", limit=2)
        assert conn.execute(select(db.schedule_log.c.id)).all()
    assert [(r.kind, r.detail) for r in rows] == [("skipped", "detail 2"), ("missed", "detail 1")]
    assert rows[0].slot == SLOT + timedelta(days=14) and rows[0].slot.tzinfo is not None
