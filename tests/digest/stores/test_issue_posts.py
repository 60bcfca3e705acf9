"""Editors' changes to a planned issue, on SQLite and PostgreSQL: left-out posts vanish from
every variant, reordering changes the rendered order, and a decided issue no longer changes."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import Config
from digest.errors import DigestError
from digest.events import apply_events
from digest.lifecycle import why_not_editable
from digest.models import Issue
from digest.stores import issue_posts
from digest.stores import issues as issue_store
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock


@pytest.fixture
def project(example_config: Config, clock: FixedClock, engine: Engine) -> Project:
    project = Project.open(example_config, clock=clock, engine=engine)
    gathering.gather_sources(project)
    with engine.begin() as conn:
        SubscriberStore(conn).add("r@example.com", "", frozenset({"backend"}), clock(), "t")
    return project


def planned(project: Project) -> Issue:
    found = issue_cases.plan(project, "weekly")
    assert found is not None and found.issue.id is not None
    return found.issue


def titles(issue: Issue, topic: str) -> list[str]:
    return [p.post.title for p in issue.section(topic).posts]


def test_a_left_out_post_is_gone_from_the_issue_and_its_email(project: Project) -> None:
    issue = planned(project)
    assert issue.id is not None
    first = issue.section("backend").posts[0]
    with project.engine.begin() as conn:
        issue_posts.set_excluded(conn, issue.id, first.id, True)
    edited = issue_cases.load(project, issue.id)
    assert first.post.title not in titles(edited, "backend")
    html = project.render(edited).variant(frozenset({"backend"})).html
    assert first.post.title not in html
    assert titles(edited, "backend") == titles(issue, "backend")[1:]
    with project.engine.connect() as conn:
        shown = [e for e in issue_posts.entries(conn, issue.id) if e.post_id == first.id]
    assert shown and all(e.excluded for e in shown)  # still listed for the editor
    with project.engine.begin() as conn:
        issue_posts.set_excluded(conn, issue.id, first.id, False)
    assert titles(issue_cases.load(project, issue.id), "backend") == titles(issue, "backend")


def test_a_topic_whose_posts_are_all_left_out_leaves_the_issue(project: Project) -> None:
    issue = planned(project)
    assert issue.id is not None
    with project.engine.begin() as conn:
        for post in issue.section("security").posts if "security" in issue.topic_slugs else ():
            issue_posts.set_excluded(conn, issue.id, post.id, True)
        for post in issue.section("frontend").posts:
            issue_posts.set_excluded(conn, issue.id, post.id, True)
    edited = issue_cases.load(project, issue.id)
    assert "frontend" not in edited.topic_slugs and "backend" in edited.topic_slugs


def test_reordering_moves_a_post_within_its_topic(project: Project) -> None:
    issue = planned(project)
    assert issue.id is not None
    before = titles(issue, "backend")
    last = issue.section("backend").posts[-1]
    with project.engine.begin() as conn:
        issue_posts.move(conn, issue.id, "backend", last.id, -1)
    assert titles(issue_cases.load(project, issue.id), "backend") == [
        *before[:-2],
        before[-1],
        before[-2],
    ]
    with project.engine.begin() as conn:
        issue_posts.move(conn, issue.id, "backend", last.id, -100)  # clamped to the top
    after = titles(issue_cases.load(project, issue.id), "backend")
    assert after == [before[-1], *before[:-1]]
    html = project.render(issue_cases.load(project, issue.id)).variant(frozenset({"backend"})).html
    assert html.index(before[-1]) < html.index(before[0])
    with project.engine.begin() as conn, pytest.raises(DigestError, match="not in topic"):
        issue_posts.move(conn, issue.id, "data", last.id, 1)


def test_the_last_post_cannot_be_left_out(project: Project) -> None:
    issue = planned(project)
    assert issue.id is not None
    posts = {p.id for s in issue.sections for p in s.posts}
    with project.engine.begin() as conn:
        for post_id in sorted(posts)[:-1]:
            issue_posts.set_excluded(conn, issue.id, post_id, True)
        with pytest.raises(DigestError, match="last post"):
            issue_posts.set_excluded(conn, issue.id, sorted(posts)[-1], True)


def test_an_approved_or_sent_issue_no_longer_changes(project: Project) -> None:
    issue = planned(project)
    assert issue.id is not None
    post = issue.sections[0].posts[0]
    with project.engine.begin() as conn:
        issue_store.set_approval(conn, issue.id, "approved", "ed@example.com", project.clock())
    with project.engine.begin() as conn, pytest.raises(DigestError, match="approved"):
        issue_posts.set_excluded(conn, issue.id, post.id, True)
    with project.engine.begin() as conn:
        row = issue_store.issue_row(conn, issue.id)
    assert why_not_editable(row.status, row.approval) is not None
    sending.send(project, "weekly")
    with project.engine.connect() as conn:
        row = issue_store.issue_row(conn, issue.id)
        assert why_not_editable(row.status, row.approval) == "it has been sent"
        figures = issue_cases.figures(conn, issue.id)
    assert figures.recipients == 1 and figures.counts["submitted"] == 1
    assert figures.counts["delivered"] == 0


def test_figures_count_ledger_states_and_webhook_events(project: Project) -> None:
    issue = planned(project)
    assert issue.id is not None
    sending.send(project, "weekly")
    with project.engine.begin() as conn:
        reader = SubscriberStore(conn).get("r@example.com")
        assert reader is not None and reader.status is Status.ACTIVE
        events = [
            {"event": kind, "sg_event_id": f"e{i}", "email": reader.email, "issue_id": issue.id}
            for i, kind in enumerate(["delivered", "open", "open", "click", "bounce"])
        ]
        apply_events(conn, events, project.clock())
        figures = issue_cases.figures(conn, issue.id)
    assert figures.counts == {
        "submitted": 1,
        "failed": 0,
        "ambiguous": 0,
        "delivered": 1,
        "bounced": 1,
        "complained": 0,
        "opened": 2,
        "clicked": 1,
    }
