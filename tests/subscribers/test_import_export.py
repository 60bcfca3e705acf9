"""Imports and exports through the CLI: a 10,000-row file, JSON Lines, suppression, round trip."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from digest.app.wiring import Project
from digest.cli import app
from digest.config import Config, load_config
from digest.scaffold import scaffold
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.conftest import DEMO_NOW as NOW

TOPICS = [
    "Backend & Infrastructure",
    "ai-ml",
    "DATA",
    "frontend|security",
    "Frontend;Data Engineering",
]


def write_big_csv(path: Path, rows: int = 10_000) -> dict[int, str]:
    """One row in 20 is bad, in one of three ways in turn; returns line → expected reason."""
    bad: dict[int, str] = {}
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "topics"])
        for i in range(rows):
            line = i + 2
            email, topics = f"reader{i}@example.com", TOPICS[i % len(TOPICS)]
            kind = (i // 20) % 3
            if i % 20 == 7 and kind == 0:
                email, bad[line] = f"reader{i}-at-example.com", "bad address"
            elif i % 20 == 7 and kind == 1:
                topics, bad[line] = "Gardening", "unknown topic"
            elif i % 20 == 7:
                email, bad[line] = f"READER{i - 1}@example.com", f"duplicate of line {line - 1}"
            writer.writerow([email, f"Reader {i}", topics])
    return bad


def run(config: Config, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(config.path)], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def counts(stdout: str) -> dict[str, int]:
    return {m[0].strip(): int(m[1]) for m in re.findall(r"│ ([a-z ,]+?)\s+│\s+(\d+) │", stdout)}


def test_ten_thousand_rows_with_five_percent_bad(example_project: Project, tmp_path: Path) -> None:
    config = example_project.config
    with example_project.engine.begin() as conn:
        SubscriberStore(conn).add(
            "reader3@example.com", "", frozenset({"data"}), example_project.clock()
        )
        SubscriberStore(conn).set_status(
            "reader3@example.com", Status.UNSUBSCRIBED, example_project.clock()
        )
    big = tmp_path / "big.csv"
    bad = write_big_csv(big)
    assert len(bad) == 500

    code, stdout, stderr = run(config, "subscribers", "import", str(big))
    assert code == 1
    reported = {
        int(line): reason for line, reason in re.findall(r"big\.csv:(\d+): ([^\n]+)", stderr)
    }
    assert set(reported) == set(bad)
    for line, reason in bad.items():
        assert reported[line].startswith(reason), (line, reported[line])
    assert counts(stdout)["added"] == 9_500 - 1
    assert counts(stdout)["suppressed, left alone"] == 1

    code, stdout, _ = run(config, "subscribers", "import", str(big))
    assert counts(stdout)["added"] == 0 and counts(stdout)["updated"] == 0
    assert counts(stdout)["unchanged"] == 9_500 - 1
    with example_project.engine.connect() as conn:
        store = SubscriberStore(conn)
        assert store.get("reader3@example.com").status is Status.UNSUBSCRIBED  # type: ignore[union-attr]
        per_status, _ = store.stats()
    assert per_status == {"active": 9_499, "unsubscribed": 1}


def test_jsonl_import_export_round_trip_and_reactivation(
    example_project: Project, tmp_path: Path
) -> None:
    config = example_project.config
    source = tmp_path / "people.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "email": "Ada@Example.com",
                        "name": "Ada",
                        "topics": ["backend", "Data Engineering"],
                    }
                ),
                json.dumps({"email": "bo@example.com", "topics": "frontend|ai-ml"}),
                "{not json",
                json.dumps({"name": "no address"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    code, _, stderr = run(config, "subscribers", "import", str(source))
    assert code == 1
    assert "people.jsonl:3: not JSON" in stderr and "people.jsonl:4: expected an object" in stderr

    run(config, "subscribers", "remove", "bo@example.com")
    exported = tmp_path / "out.csv"
    code, stdout, _ = run(config, "subscribers", "export", str(exported))
    assert code == 0 and "Exported 2 subscribers" in stdout
    rows = {r["email"]: r for r in csv.DictReader(exported.open(encoding="utf-8-sig"))}
    assert rows["Ada@example.com"]["topics"] == "backend;data"
    assert rows["bo@example.com"]["status"] == "unsubscribed"

    code, stdout, _ = run(config, "subscribers", "import", str(exported), "--dry-run")
    assert counts(stdout)["unchanged"] == 1 and counts(stdout)["suppressed, left alone"] == 1
    # The export says bo unsubscribed: with --reactivate too, that is no proof of consent.
    code, stdout, _ = run(config, "subscribers", "import", str(exported), "--reactivate")
    assert counts(stdout)["reactivated"] == 0 and counts(stdout)["suppressed, left alone"] == 1
    consent = tmp_path / "consent.csv"
    consent.write_text("email,name,topics\nbo@example.com,Bo,frontend\n", encoding="utf-8")
    code, stdout, _ = run(config, "subscribers", "import", str(consent), "--reactivate")
    assert counts(stdout)["reactivated"] == 1
    with example_project.engine.connect() as conn:
        assert SubscriberStore(conn).get("bo@example.com").status is Status.ACTIVE  # type: ignore[union-attr]


def test_an_export_imports_into_a_fresh_project_keeping_every_status(
    example_project: Project, tmp_path: Path, environ: dict[str, str]
) -> None:
    """The 38-became-active bug: into a fresh project, nobody who asked not to be mailed is."""
    statuses = [s for s in Status if s is not Status.ERASED]
    with example_project.engine.begin() as conn:
        store = SubscriberStore(conn)
        for status in statuses:
            store.add(f"{status.value}@example.com", "", frozenset({"data"}), NOW, "web", status)
    exported = tmp_path / "list.csv"
    assert run(example_project.config, "subscribers", "export", str(exported))[0] == 0

    fresh = load_config(scaffold(tmp_path / "fresh"), environ)
    code, stdout, _ = run(fresh, "subscribers", "import", str(exported))
    assert code == 0
    report = counts(stdout)
    assert report["added"] == len(statuses)
    assert report["of which kept suppressed"] == 3 and report["of which pending, not mailed"] == 1
    fresh_project = Project.open(fresh)
    with fresh_project.engine.connect() as conn:
        store = SubscriberStore(conn)
        for status in statuses:
            found = store.get(f"{status.value}@example.com")
            assert found is not None and found.status is status

    # Fresh consent for all of them: only the unsubscribed one comes back.
    consent = tmp_path / "consent.csv"
    consent.write_text(
        "email,topics\n" + "".join(f"{s.value}@example.com,data\n" for s in statuses),
        encoding="utf-8",
    )
    code, stdout, _ = run(fresh, "subscribers", "import", str(consent), "--reactivate")
    report = counts(stdout)
    assert report["reactivated"] == 2  # unsubscribed, and pending (the file says subscribed)
    assert report["bounced or complained, not reactivated"] == 2
    with fresh_project.engine.connect() as conn:
        store = SubscriberStore(conn)
        got = {s: store.get(f"{s.value}@example.com").status for s in statuses}  # type: ignore[union-attr]
    assert got == {
        Status.ACTIVE: Status.ACTIVE,
        Status.PENDING: Status.ACTIVE,
        Status.UNSUBSCRIBED: Status.ACTIVE,
        Status.BOUNCED: Status.BOUNCED,
        Status.COMPLAINED: Status.COMPLAINED,
    }
