"""`digest editors`: passwords are prompted for, stored only as hashes, and log in."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from digest.app.wiring import Project
from digest.cli import app
from digest.errors import DigestError
from digest.passwords import verify_password
from digest.stores.editors import EditorStore, authenticate


def run(project: Project, *args: str, typed: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(
        app, [*args, "--config", str(project.config.path)], input=typed, catch_exceptions=False
    )
    return result.exit_code, result.stdout


def test_add_stores_a_hash_that_logs_in(example_project: Project) -> None:
    code, out = run(
        example_project,
        "editors",
        "add",
        "Ed@Northwind.example",
        "--name",
        "Ed",
        typed="correct horse battery\ncorrect horse battery\n",
    )
    assert code == 0 and "Added editor ed@northwind.example" in out
    with example_project.engine.connect() as conn:
        store = EditorStore(conn)
        editor = store.get("ed@northwind.example")
        assert editor is not None and editor.name == "Ed"
        assert "correct horse battery" not in editor.password_hash
        assert authenticate(store, "ED@northwind.example", "correct horse battery") == editor
        assert authenticate(store, "ed@northwind.example", "wrong horse battery") is None
    code, out = run(example_project, "editors", "list")
    assert code == 0 and "ed@northwind.example" in out and "database" in out
    code, _ = run(example_project, "editors", "remove", "ed@northwind.example")
    assert code == 0
    with example_project.engine.connect() as conn:
        assert EditorStore(conn).get("ed@northwind.example") is None


def test_add_refuses_a_short_or_mistyped_password(example_project: Project) -> None:
    with pytest.raises(DigestError, match="at least 10 characters"):
        run(example_project, "editors", "add", "ed@northwind.example", typed="short\nshort\n")
    result = CliRunner().invoke(
        app,
        ["editors", "add", "ed@northwind.example", "--config", str(example_project.config.path)],
        input="correct horse battery\ncorrect horse batterY\n",
    )
    assert result.exit_code != 0  # the confirmation did not match and input ran out
    with example_project.engine.connect() as conn:
        assert EditorStore(conn).get("ed@northwind.example") is None


def test_hash_prints_a_hash_for_the_config(example_project: Project) -> None:
    result = CliRunner().invoke(
        app, ["editors", "hash"], input="correct horse battery\ncorrect horse battery\n"
    )
    assert result.exit_code == 0
    stored = result.stdout.strip().splitlines()[-1]
    assert stored.startswith("$scrypt$") and verify_password("correct horse battery", stored)
