"""run_slot, the scheduled job's body, driven with an injected clock: each approval policy,
reruns of a slot, and slots that passed without a send."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from digest import db
from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.scheduled import run_slot
from digest.app.wiring import Project
from digest.errors import ApprovalError
from digest.lifecycle import IssueStatus
from digest.stores import issues as issue_store
from subscribers.importer import parse_csv, topic_resolver
from subscribers.store import SubscriberStore
from tests.conftest import DEMO_NOW, FixedClock

SLOT = DEMO_NOW  # Monday 23 November 2026, 08:00 in Berlin: a slot of "0 8 * * mon"
WEEK = timedelta(days=7)
EDITOR = "Ed Itor <ed@example.com>"


@pytest.fixture
def project(example_project: Project) -> Project:
    csv = example_project.config.base_dir / "subscribers.csv"
    with csv.open(encoding="utf-8", newline="") as handle:
        names = ((t.slug, t.name) for t in example_project.topics())
        parsed = parse_csv(handle, topic_resolver(names))
    with example_project.engine.begin() as conn:
        SubscriberStore(conn).upsert(parsed.rows, example_project.clock(), "test")
    return example_project


def use(project: Project, **changes: Any) -> None:
    """The example digest with some keys changed (as if digest.toml said so)."""
    digest = project.config.digests[0].model_copy(update=changes)
    project.config = replace(
        project.config, file=project.config.file.model_copy(update={"digests": [digest]})
    )


def deliveries(project: Project) -> int:
    with project.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(db.deliveries)).scalar_one())


def issue(project: Project, issue_id: int | None) -> issue_store.IssueRow:
    assert issue_id is not None
    with project.engine.connect() as conn:
        return issue_store.issue_row(conn, issue_id)


def log_kinds(project: Project) -> list[str]:
    with project.engine.connect() as conn:
        return [row.kind for row in reversed(issue_store.schedule_log(conn, "weekly"))]


def editor_mail(project: Project) -> list[EmailMessage]:
    folder = project.config.outbox_dir / "messages"
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def issue_posts(project: Project, issue_id: int | None) -> set[int]:
    assert issue_id is not None
    loaded = issue_cases.load(project, issue_id)
    return {p.id for s in loaded.sections for p in s.posts}


def test_auto_sends_at_the_slot_and_a_rerun_of_the_slot_sends_nothing(
    project: Project, clock: FixedClock
) -> None:
    ran = run_slot(project, "weekly", SLOT)
    assert ran.kind == "ran" and ran.submitted > 0
    sent = deliveries(project)
    assert sent == ran.submitted
    row = issue(project, ran.issue_id)
    assert (row.slot, row.approval, row.status) == (SLOT, "none", IssueStatus.SENT)

    clock.now += timedelta(minutes=30)
    again = run_slot(project, "weekly", SLOT)
    assert again.kind == "nothing" and "sent already" in again.detail
    assert again.submitted == 0 and deliveries(project) == sent
    assert log_kinds(project) == ["ran", "nothing"]


def test_require_asks_the_editors_before_the_slot_and_sends_once_approved(
    project: Project, clock: FixedClock
) -> None:
    use(project, approval="require", notify=[EDITOR])
    clock.now = SLOT - timedelta(hours=24)
    asked = run_slot(project, "weekly", SLOT)
    assert asked.kind == "notified"
    row = issue(project, asked.issue_id)
    assert (row.slot, row.approval, row.status) == (SLOT, "pending", "planned")
    [mail] = editor_mail(project)
    assert mail["To"] == EDITOR
    assert "Please approve The Northwind Weekly, issue 1" in mail["Subject"]
    body = mail.get_body(("plain",))
    assert body is not None
    link = f"{project.config.site.public_url}/editor/issues/{row.id}"
    assert link in body.get_content()
    assert "Mon 2026-11-23 08:00 CET (07:00 UTC)" in body.get_content()

    clock.now = SLOT - timedelta(hours=23)
    waiting = run_slot(project, "weekly", SLOT)
    assert waiting.kind == "waiting" and len(editor_mail(project)) == 1  # asked once

    with project.engine.begin() as conn:
        issue_store.set_approval(conn, row.id, "approved", "ed@example.com", clock())
    clock.now = SLOT
    ran = run_slot(project, "weekly", SLOT)
    assert ran.kind == "ran" and ran.issue_id == row.id and ran.submitted == deliveries(project)
    assert ran.submitted > 0
    assert log_kinds(project) == ["notified", "waiting", "ran"]


def test_require_unapproved_by_the_slot_is_skipped_and_its_posts_go_into_the_next_issue(
    project: Project, clock: FixedClock
) -> None:
    use(project, approval="require", notify=[EDITOR])
    clock.now = SLOT - timedelta(hours=20)
    asked = run_slot(project, "weekly", SLOT)
    clock.now = SLOT
    skipped = run_slot(project, "weekly", SLOT)
    assert skipped.kind == "skipped" and deliveries(project) == 0
    row = issue(project, asked.issue_id)
    assert (row.status, row.approval, row.approval_note) == (
        "skipped",
        "skipped",
        "not approved by its slot",
    )
    assert run_slot(project, "weekly", SLOT).kind == "nothing"  # a rerun changes nothing

    use(project, approval="auto")
    clock.now = SLOT + WEEK
    following = run_slot(project, "weekly", SLOT + WEEK)
    assert following.kind == "ran" and following.submitted > 0
    assert following.issue_number == row.number + 1
    assert issue_posts(project, following.issue_id) == issue_posts(project, row.id)
    assert log_kinds(project) == ["notified", "skipped", "nothing", "ran"]


def test_require_with_nobody_asked_in_time_skips_at_the_slot(
    project: Project, clock: FixedClock
) -> None:
    use(project, approval="require", notify=[EDITOR])
    skipped = run_slot(project, "weekly", SLOT)
    assert skipped.kind == "skipped" and deliveries(project) == 0
    assert issue(project, skipped.issue_id).approval_note == (
        "not approved by its slot (no editor was asked in time)"
    )
    assert editor_mail(project) == []


def test_hold_is_never_sent_by_the_scheduler_and_digest_send_needs_force(
    project: Project, clock: FixedClock
) -> None:
    use(project, approval="hold")
    held = run_slot(project, "weekly", SLOT)
    assert held.kind == "held" and deliveries(project) == 0
    assert issue(project, held.issue_id).approval == "held"
    clock.now += timedelta(hours=3)
    assert run_slot(project, "weekly", SLOT).kind == "held" and deliveries(project) == 0

    with pytest.raises(ApprovalError, match="issue 1 of weekly is held"):
        sending.send(project)
    assert deliveries(project) == 0
    planned, report = sending.send(project, force=True, by="ed@example.com (digest send --force)")
    assert planned is not None and report is not None and report.submitted > 0
    row = issue(project, held.issue_id)
    assert (row.approval, row.approval_by, row.status) == (
        "approved",
        "ed@example.com (digest send --force)",
        "sent",
    )
    assert run_slot(project, "weekly", SLOT).kind == "nothing"
    assert deliveries(project) == report.submitted


def test_a_held_issue_approved_in_the_editor_app_goes_out_with_the_next_run_of_its_slot(
    project: Project, clock: FixedClock
) -> None:
    use(project, approval="hold")
    held = run_slot(project, "weekly", SLOT)
    clock.now += timedelta(hours=2)
    with project.engine.begin() as conn:
        issue_store.set_approval(conn, held.issue_id or 0, "approved", "ed@example.com", clock())
    ran = run_slot(project, "weekly", SLOT)
    assert ran.kind == "ran" and ran.issue_id == held.issue_id and ran.submitted > 0


def test_an_earlier_slots_issue_that_never_went_out_is_skipped_when_the_next_slot_plans(
    project: Project, clock: FixedClock
) -> None:
    use(project, approval="require", notify=[EDITOR])
    clock.now = SLOT - timedelta(hours=24)
    first = run_slot(project, "weekly", SLOT)
    # The scheduler was down over SLOT; it is back a day before the next slot.
    clock.now = SLOT + WEEK - timedelta(hours=24)
    second = run_slot(project, "weekly", SLOT + WEEK)
    assert second.kind == "notified" and second.issue_id != first.issue_id
    assert issue(project, first.issue_id).status == "skipped"
    assert issue_posts(project, second.issue_id) == issue_posts(project, first.issue_id)
    assert log_kinds(project) == ["notified", "skipped", "notified"]
    assert len(editor_mail(project)) == 2


def test_the_repeat_of_a_wall_time_that_happens_twice_sends_nothing(
    project: Project, clock: FixedClock
) -> None:
    use(project, schedule="30 2 * * *")
    first = SLOT.replace(year=2027, month=10, day=31, hour=0, minute=30)  # 02:30 CEST
    repeat = first + timedelta(hours=1)  # 02:30 CET
    clock.now = repeat
    outcome = run_slot(project, "weekly", repeat)
    assert outcome.kind == "nothing" and "happened twice" in outcome.detail
    assert deliveries(project) == 0
    clock.now = first
    assert run_slot(project, "weekly", first).kind == "ran"


def test_a_slot_with_nothing_new_plans_no_issue(project: Project, clock: FixedClock) -> None:
    assert run_slot(project, "weekly", SLOT).kind == "ran"
    clock.now = SLOT + WEEK
    nothing = run_slot(project, "weekly", SLOT + WEEK)
    assert nothing.kind == "nothing" and nothing.issue_id is None
    assert nothing.detail == "nothing new since the last issue"


def test_outbox_files_match_the_ledger(project: Project, clock: FixedClock) -> None:
    ran = run_slot(project, "weekly", SLOT)
    folder = project.config.outbox_dir / "weekly"
    assert len(list(Path(folder).rglob("*.eml"))) == ran.submitted == deliveries(project)


def test_a_hand_made_issue_taken_by_a_slot_becomes_that_slots_issue(
    project: Project, clock: FixedClock
) -> None:
    gathering.gather_sources(project)
    by_hand = issue_cases.plan(project)
    assert by_hand is not None and by_hand.issue.id is not None
    ran = run_slot(project, "weekly", SLOT)
    assert ran.kind == "ran" and ran.issue_id == by_hand.issue.id
    assert issue(project, by_hand.issue.id).slot == SLOT
    assert run_slot(project, "weekly", SLOT).kind == "nothing"


def test_a_slot_nobody_would_get_plans_nothing_and_keeps_the_posts(
    example_project: Project, clock: FixedClock
) -> None:
    """No subscriber yet (a new project): the slot is recorded as "nothing" with the reason,
    and once readers come, the next slot's issue has every post."""
    quiet = run_slot(example_project, "weekly", SLOT)
    assert quiet.kind == "nothing" and quiet.issue_id is None
    assert "issue 1 would go to nobody" in quiet.detail
    assert log_kinds(example_project) == ["nothing"]
    with example_project.engine.begin() as conn:
        SubscriberStore(conn).add("r@example.com", "R", frozenset({"backend"}), clock(), "t")
    clock.now += timedelta(days=7)
    ran = run_slot(example_project, "weekly", SLOT + timedelta(days=7))
    assert ran.kind == "ran" and ran.submitted == 1, ran.detail
    assert issue(example_project, ran.issue_id).number == 1
    # Every new post (19): the issue holds them all, each email caps its topics.
    assert len(issue_posts(example_project, ran.issue_id)) == 19
