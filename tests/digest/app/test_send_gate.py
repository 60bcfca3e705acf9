"""Every way an issue can be sent × every approval policy: the lifecycle's one rule binds them
all. A digest whose policy asks for approval (require, hold) is never sent by hand without an
editor's approval or --force; the scheduler follows its gate; an editor's "send now" approves
first, so it always goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from digest import db
from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.editorial import Editorial
from digest.app.scheduled import run_slot
from digest.app.wiring import Project
from digest.cli import app
from digest.errors import ApprovalError
from digest.stores.editors import Editor
from subscribers.importer import parse_csv, topic_resolver
from subscribers.store import SubscriberStore
from tests.conftest import DEMO_NOW

EDITOR = Editor("ed@example.com", "Ed", "", "config")
POLICY_LINES = {
    "auto": 'approval = "auto"',
    "require": 'approval = "require"\nnotify = ["ed@example.com"]',
    "hold": 'approval = "hold"',
}


def with_policy(project: Project, policy: str) -> Project:
    """The example project with ``approval = policy`` in its digest.toml (for the CLI, which
    reads the file) and in the loaded config (for the use cases called directly)."""
    path = Path(project.config.path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('# approval = "auto"', POLICY_LINES[policy], 1), encoding="utf-8")
    changes: dict[str, object] = {"approval": policy}
    if policy == "require":
        changes["notify"] = ["ed@example.com"]
    digest = project.config.digests[0].model_copy(update=changes)
    project.config = replace(
        project.config, file=project.config.file.model_copy(update={"digests": [digest]})
    )
    csv = project.config.base_dir / "subscribers.csv"
    with csv.open(encoding="utf-8", newline="") as handle:
        parsed = parse_csv(handle, topic_resolver((t.slug, t.name) for t in project.topics()))
    with project.transaction() as conn:
        SubscriberStore(conn).upsert(parsed.rows, project.clock(), "test")
    gathering.gather_sources(project)
    return project


def deliveries(project: Project) -> int:
    with project.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(db.deliveries)).scalar_one())


def cli(project: Project, *args: str) -> None:
    CliRunner(env={"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}).invoke(
        app, [*args, "--config", str(project.config.path)], catch_exceptions=False
    )


def cli_worker(project: Project) -> None:
    issue_cases.plan(project)  # the worker helps with an issue planned elsewhere
    cli(project, "worker")


def editor_send_now(project: Project) -> None:
    planned = issue_cases.plan(project)
    assert planned is not None and planned.issue.id is not None
    editorial = Editorial(project)
    digest = editorial.decide(planned.issue.id, "send-now", EDITOR, None)
    assert digest == "weekly"
    editorial.send_now(digest)


def scheduler(project: Project) -> None:
    run_slot(project, "weekly", DEMO_NOW)


BY_HAND: dict[str, Callable[[Project], object]] = {
    "digest send": lambda p: cli(p, "send"),
    "digest run": lambda p: cli(p, "run"),
    "digest worker": cli_worker,
    "python api": sending.send,
}


@pytest.mark.parametrize("policy", ["auto", "require", "hold"])
@pytest.mark.parametrize("entry", sorted(BY_HAND))
def test_by_hand_sends_only_what_the_policy_lets_go(
    example_project: Project, policy: str, entry: str
) -> None:
    project = with_policy(example_project, policy)
    if policy == "auto":
        BY_HAND[entry](project)
        assert deliveries(project) == 29
        return
    with pytest.raises(ApprovalError, match=f"is not approved .*'{policy}'.*--force"):
        BY_HAND[entry](project)
    assert deliveries(project) == 0


@pytest.mark.parametrize(
    ("policy", "sent"), [("auto", 29), ("require", 0), ("hold", 0)], ids=["auto", "require", "hold"]
)
def test_the_scheduler_follows_its_gate(example_project: Project, policy: str, sent: int) -> None:
    project = with_policy(example_project, policy)
    scheduler(project)
    assert deliveries(project) == sent


@pytest.mark.parametrize("policy", ["auto", "require", "hold"])
def test_an_editors_send_now_approves_then_sends(example_project: Project, policy: str) -> None:
    project = with_policy(example_project, policy)
    editor_send_now(project)
    assert deliveries(project) == 29


@pytest.mark.parametrize("policy", ["require", "hold"])
def test_force_records_who_approved_and_sends(example_project: Project, policy: str) -> None:
    project = with_policy(example_project, policy)
    planned, report = sending.send(project, force=True, by="ed (digest send --force)")
    assert report is not None and report.submitted == 29 and planned is not None
    row = issue_cases.row(project, planned.issue.id or 0)
    assert row is not None and (row.approval, row.approval_by) == (
        "approved",
        "ed (digest send --force)",
    )
