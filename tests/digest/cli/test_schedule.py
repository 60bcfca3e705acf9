"""``digest schedule list``, ``digest scheduler`` when another one runs, ``digest send`` on a
held issue."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from digest.app import gathering
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.cli import app, output
from digest.config import Config, load_config
from digest.errors import ApprovalError
from digest.schedule import acquire_lock
from digest.stores import issues as issue_store
from subscribers import tables as subscriber_tables

ENV = {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}


def configured(example_config: Config, *lines: str, schedule: str = "30 2 * * *") -> Path:
    path = example_config.path
    text = path.read_text(encoding="utf-8")
    text = text.replace('schedule = "0 8 * * mon"', f'schedule = "{schedule}"')
    text = text.replace("max_posts_per_topic = 4", "\n".join(["max_posts_per_topic = 4", *lines]))
    path.write_text(text, encoding="utf-8")
    return path


def test_schedule_list_shows_next_runs_policy_missed_slots_and_dst_edges(
    example_config: Config,
) -> None:
    path = configured(example_config, 'approval = "require"', 'notify = ["ed@example.com"]')
    project = Project.open(load_config(path, ENV))
    slot = datetime(2026, 11, 16, 1, 30, tzinfo=UTC)
    with project.engine.begin() as conn:
        issue_store.log_schedule(
            conn, "weekly", slot, "missed", "run missed: no scheduler was running", slot
        )
    result = CliRunner().invoke(app, ["schedule", "list", "--config", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "require" in text and "editors asked" in text
    assert "02:30 CET" in text and "01:30 UTC" in text
    assert (
        "weekly missed: slot Mon 2026-11-16 02:30 CET = 01:30 UTC: run missed: no scheduler "
        "was running" in text
    )
    assert (
        "02:30 does not exist in Europe/Berlin (clocks go forward 1 h): APScheduler runs it at "
        "03:30 CEST (01:30 UTC) instead" in text
    )
    assert "02:30 happens twice in Europe/Berlin (clocks go back 1 h)" in text
    assert "No `digest scheduler` is running on this database" in text
    lock = acquire_lock(project.engine)
    try:
        running = CliRunner().invoke(app, ["schedule", "list", "--config", str(path)], env=ENV)
    finally:
        lock.release()
    assert running.exit_code == 0 and "No `digest scheduler` is running" not in running.output


def test_a_second_scheduler_exits_with_a_clear_message(example_config: Config) -> None:
    path = configured(example_config)
    project = Project.open(load_config(path, ENV))
    lock = acquire_lock(project.engine)
    try:
        result = CliRunner().invoke(app, ["scheduler", "--config", str(path)], env=ENV)
    finally:
        lock.release()
    assert result.exit_code == 3
    assert "another `digest scheduler` is already running on this database" in result.output
    assert f"(pid {os.getpid()})" in result.output
    assert "Use --wait to take over when it stops." in result.output


def test_digest_send_refuses_a_held_issue_without_force(example_config: Config) -> None:
    path = configured(example_config, 'approval = "hold"')
    project = Project.open(load_config(path, ENV))
    gathering.gather_sources(project)
    planned = issue_cases.plan(project, without_readers=True)
    assert planned is not None and planned.issue.id is not None
    with project.engine.begin() as conn:
        issue_store.set_approval(
            conn, planned.issue.id, "held", None, datetime.now(UTC), "policy hold"
        )
    runner = CliRunner()
    refused = runner.invoke(app, ["send", "--config", str(path)], env=ENV)
    assert isinstance(refused.exception, ApprovalError)
    assert (
        "is held: approve it in the editor app, or send it anyway with `digest send --force`"
        in (str(refused.exception))
    )
    forced = runner.invoke(app, ["send", "--force", "--config", str(path)], env=ENV)
    assert forced.exit_code == 0, forced.output
    assert "Emails submitted:" in forced.output
    with project.engine.connect() as conn:
        row = issue_store.issue_row(conn, planned.issue.id)
    assert row.status == "sent" and row.approval == "approved"
    assert row.approval_by is not None and row.approval_by.endswith("(digest send --force)")


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)


def test_schedule_list_shows_each_cadence_and_the_waves_of_a_local_delivery_slot(
    example_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = configured(
        example_config,
        "local_delivery = true",
        'cadences = { daily = "0 8 * * *", weekly = "0 8 * * mon" }',
        'default_cadence = "weekly"',
    )
    project = Project.open(load_config(path, ENV))
    imported = CliRunner().invoke(
        app,
        ["subscribers", "import", str(path.parent / "subscribers.csv"), "--config", str(path)],
        env=ENV,
    )
    assert imported.exit_code == 0, imported.output
    s = subscriber_tables.subscribers.c
    with project.engine.begin() as conn:
        ids = list(conn.execute(select(s.id).order_by(s.id)).scalars())
        zones = ["Asia/Kathmandu", "Pacific/Kiritimati", "America/St_Johns"]
        for i, zone in zip(ids[: len(zones)], zones, strict=True):
            conn.execute(
                update(subscriber_tables.subscribers).where(s.id == i).values(time_zone=zone)
            )
    monkeypatch.setattr(output.out, "_width", 200)
    result = CliRunner().invoke(app, ["schedule", "list", "--config", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "weekly (daily)" in text and "weekly (weekly)" in text
    assert "Every day at 08:00, each reader's time zone" in text
    assert "Waves of weekly (daily)" in text and "Waves of weekly (weekly)" in text
    for shown in ("+14:00 │ Pacific/Kiritimati │ 1", "+05:45 │ Asia/Kathmandu │ 1", "-03:30"):
        assert shown in text, shown


def test_schedule_list_warns_about_the_dst_edges_of_each_cadence(
    example_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = configured(example_config, 'cadences = { daily = "30 2 * * *", weekly = "0 8 * * mon" }')
    monkeypatch.setattr(output.out, "_width", 200)
    result = CliRunner().invoke(app, ["schedule", "list", "--config", str(path)], env=ENV)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "weekly (daily)" in text and "weekly (weekly)" in text
    assert "warning: weekly (daily): " in text and "02:30 does not exist in Europe/Berlin" in text
    assert "warning: weekly (weekly)" not in text
