"""``digest subscribers add / remove / list / stats`` and ``digest db upgrade``: what they print
and their exit codes (imports and exports: tests/subscribers/test_import_export.py)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from digest.app.wiring import Project
from digest.cli import app
from digest.errors import DigestError


def run(project: Project, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, [*args, "--config", str(project.config.path)], catch_exceptions=False
    )
    return result.exit_code, " ".join(result.stdout.split())


def test_add_remove_list_and_stats(example_project: Project) -> None:
    code, out = run(example_project, "subscribers", "add", "New@Example.com", "-t", "Frontend;data")
    assert code == 0 and out == "Added New@example.com: data, frontend"
    with pytest.raises(DigestError, match="is already a subscriber"):
        run(example_project, "subscribers", "add", "new@example.com", "-t", "data")
    code, out = run(example_project, "subscribers", "list", "--topic", "frontend")
    assert code == 0 and "New@example.com" in out and "active" in out
    code, out = run(example_project, "subscribers", "remove", "new@example.com")
    assert code == 0 and out == "Unsubscribed New@example.com"
    with pytest.raises(DigestError, match="is not a subscriber"):
        run(example_project, "subscribers", "remove", "nobody@example.com")
    code, out = run(example_project, "subscribers", "list", "--status", "active")
    assert code == 0 and "New@example.com" not in out
    code, out = run(example_project, "subscribers", "stats")
    assert code == 0 and "│ unsubscribed │ 1 │" in out and "│ Frontend │ 0 │" in out


def test_db_upgrade_names_the_database(example_project: Project) -> None:
    code, out = run(example_project, "db", "upgrade")
    assert code == 0 and out.startswith("Database is up to date: sqlite:///")
