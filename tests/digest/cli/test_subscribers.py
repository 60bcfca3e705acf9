"""``digest subscribers add / remove / list / stats / find / show / topics / suppress /
export-person / erase / forget-lost-erasures`` and ``digest db upgrade``: what they print and
their exit codes (imports and exports: tests/subscribers/test_import_export.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.app import people
from digest.app.wiring import Project, utc_now
from digest.cli import app
from digest.errors import DigestError
from subscribers.store import SubscriberStore


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
    code, out = run(example_project, "subscribers", "list", "--topic", "data engineering")
    assert code == 0 and "New@example.com" in out
    code, out = run(example_project, "subscribers", "list", "--topic", "security")
    assert code == 0 and "New@example.com" not in out
    with pytest.raises(DigestError, match=r"unknown topic.*gardening"):
        run(example_project, "subscribers", "list", "--topic", "gardening")
    code, out = run(example_project, "subscribers", "remove", "new@example.com")
    assert code == 0 and out == "Unsubscribed New@example.com"
    with pytest.raises(DigestError, match="is not a subscriber"):
        run(example_project, "subscribers", "remove", "nobody@example.com")
    code, out = run(example_project, "subscribers", "list", "--status", "active")
    assert code == 0 and "New@example.com" not in out
    code, out = run(example_project, "subscribers", "stats")
    assert code == 0 and "│ unsubscribed │ 1 │" in out and "│ Frontend │ 0 │" in out


def test_list_and_find_show_long_addresses_whole_and_paused_readers_as_paused(
    example_project: Project,
) -> None:
    """The CLI reads the real clock: the pause ends three weeks from now, then yesterday."""
    long = "a.very.long.local.part.for.a.narrow.terminal@example.com"
    long = "x" * (60 - len(long)) + long  # 60 characters: wider than the terminal's table
    assert len(long) == 60
    for email in (long, "paused@example.com", "here@example.com"):
        run(example_project, "subscribers", "add", email, "-t", "data", "-n", "Ada Lovelace")
    with example_project.transaction() as conn:
        paused = people.id_of(example_project, "paused@example.com")
        until = utc_now() + timedelta(weeks=3)
        SubscriberStore(conn).update(paused, utc_now(), paused_until=until)
    config = ["--config", str(example_project.config.path)]
    for command in (["list"], ["find", "example.com"]):
        result = CliRunner().invoke(
            app, ["subscribers", *command, *config], env={"COLUMNS": "60"}, catch_exceptions=False
        )
        assert result.exit_code == 0
        lines = {
            line.split()[1 if command == ["list"] else 3]: line
            for line in result.stdout.splitlines()
            if "@example.com" in line
        }
        assert set(lines) == {long, "paused@example.com", "here@example.com"}, result.stdout
        assert f"paused until {until:%Y-%m-%d}" in lines["paused@example.com"]
        assert "│ active" in lines["here@example.com"]
        assert "paused until" not in lines[long]
    with example_project.transaction() as conn:  # the pause is over: active again
        yesterday = utc_now() - timedelta(days=1)
        SubscriberStore(conn).update(paused, utc_now(), paused_until=yesterday)
    code, out = run(example_project, "subscribers", "list")
    assert code == 0 and "paused until" not in out and out.count("│ active") == 3


def test_db_upgrade_names_the_database(example_project: Project) -> None:
    code, out = run(example_project, "db", "upgrade")
    assert code == 0 and out.startswith("Database is up to date: sqlite:///")


def test_another_tools_export_imports_with_the_topics_given(example_project: Project) -> None:
    exported = Path(__file__).parents[2] / "data" / "spreadsheets"
    file = str(exported / "mailchimp_subscribed_members.csv")
    result = CliRunner().invoke(
        app,
        ["subscribers", "import", file, "-t", "backend", "-c", str(example_project.config.path)],
    )
    assert result.exit_code == 1  # its one bad row, named by line
    assert f"{file}:4: bad address 'no-at-sign.example.com'" in " ".join(result.stderr.split())
    assert "│ added │ 2 │" in " ".join(result.stdout.split())


def test_a_windows_excel_file_imports_with_its_encoding_named(example_project: Project) -> None:
    file = str(Path(__file__).parents[2] / "data" / "spreadsheets" / "excel_windows_code_page.csv")
    with pytest.raises(DigestError, match=r"line 2: .* import it as cp1252 \(--encoding cp1252\)"):
        run(example_project, "subscribers", "import", file)
    code, out = run(example_project, "subscribers", "import", file, "--encoding", "cp1252")
    assert code == 1 and "│ added │ 2 │" in out  # and its one bad row
    code, out = run(example_project, "subscribers", "list")
    assert "Jürgen Müller" in out


def test_find_show_topics_suppress_export_person_and_erase(
    example_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DIGEST_SECRET_KEY", "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"
    )  # erasure hashes with it
    for i in range(3):
        run(
            example_project, "subscribers", "add", f"r{i}@example.com", "-t", "data", "-n", f"R {i}"
        )
    code, out = run(example_project, "subscribers", "find", "example.com", "--limit", "2")
    assert code == 0 and "r0@example.com" in out and "r2@example" not in out
    after = re.search(r"More: --after (\d+)", out)
    assert after is not None
    code, out = run(example_project, "subscribers", "find", "example", "--after", after[1])
    assert "r2@example.com" in out and "More" not in out

    code, out = run(example_project, "subscribers", "topics", "R1@example.com", "Frontend;backend")
    assert code == 0 and out == "r1@example.com: backend, frontend"
    code, out = run(example_project, "subscribers", "suppress", "r1@example.com", "--as", "bounced")
    assert out == "r1@example.com is now bounced"
    code, out = run(example_project, "subscribers", "suppress", "r1@example.com")
    assert out == "r1@example.com stays bounced"
    code, out = run(example_project, "subscribers", "show", "r1@example.com")
    assert code == 0 and "status bounced; topics backend, frontend" in out

    target = tmp_path / "r1.json"
    code, out = run(example_project, "subscribers", "export-person", "r1@example.com", str(target))
    assert code == 0 and out == f"Wrote {target}: 0 deliveries, 0 events, 0 outbox files"
    held = json.loads(target.read_text(encoding="utf-8"))
    assert held["subscriber"]["email"] == "r1@example.com" and held["subscriber"]["name"] == "R 1"

    result = CliRunner().invoke(
        app,
        ["subscribers", "erase", "r1@example.com", "--config", str(example_project.config.path)],
        input="n\n",
    )
    assert result.exit_code == 1 and "Nothing erased." in result.stderr
    code, out = run(example_project, "subscribers", "erase", "r1@example.com", "--yes")
    assert code == 0 and out.startswith("Erased r1@example.com: 0 deliveries and 0 events blanked")
    code, out = run(example_project, "subscribers", "find", "r1@example.com")
    assert out == "r1@example.com was erased on request: it stays suppressed, nothing else is held."
    for command in (("show",), ("erase", "--yes"), ("topics", "data")):
        with pytest.raises(DigestError, match="erased on request"):
            run(example_project, "subscribers", command[0], "r1@example.com", *command[1:])

    # The secret key changed without the previous one, which is lost: adding stops, saying
    # how to go on; going on forgets who was erased under it.
    monkeypatch.setenv("DIGEST_SECRET_KEY", "Qp4Tn8Wv2Xc6Zb1Ld5Hf9Jg3Ks7Mr0Ny4Vu8Ee2Aa6Oo")
    with pytest.raises(DigestError, match="forget-lost-erasures"):
        run(example_project, "subscribers", "add", "r1@example.com", "-t", "data")
    code, out = run(example_project, "subscribers", "forget-lost-erasures", "--yes")
    assert out == (
        "Dropped 1 key(s) no secret key set opens: the people erased under them are no "
        "longer recognised"
    )
    code, out = run(example_project, "subscribers", "add", "r1@example.com", "-t", "data")
    assert code == 0 and out == "Added r1@example.com: data"


def test_an_unknown_address_is_one_line_on_stderr(example_project: Project) -> None:
    """The real entry point, as a shell runs it: no traceback."""
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "digest",
            "subscribers",
            "show",
            "nobody@example.com",
            "--config",
            str(example_project.config.path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"},
        check=False,
    )
    assert finished.returncode != 0
    assert finished.stderr.strip().splitlines() == [
        "error: nobody@example.com: is not a subscriber"
    ]
