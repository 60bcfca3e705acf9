"""``digest subscribers add --cadence/--time-zone``, the counts per cadence of ``digest
subscribers stats``, and ``digest worker`` beside a send of a cadence other than the default."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from digest import db
from digest.app import gathering
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.cli import app
from digest.errors import DigestError
from subscribers import tables
from subscribers.store import SubscriberStore
from tests.cadence_site import cadence_config
from tests.conftest import FixedClock
from tests.digest.cli.test_subscribers import run


@pytest.fixture
def project(tmp_path: Path, environ: dict[str, str], clock: FixedClock) -> Project:
    return Project.open(cadence_config(tmp_path / "site", environ), clock=clock)


def test_add_with_cadence_and_zone_then_stats_count_per_cadence(project: Project) -> None:
    code, out = run(
        project, "subscribers", "add", "a@example.com", "-t", "backend", "--cadence", "daily",
        "--time-zone", "america/new_york",
    )  # fmt: skip
    assert code == 0, out
    run(project, "subscribers", "add", "b@example.com", "-t", "data")
    run(project, "subscribers", "add", "c@example.com", "-t", "data", "--cadence", "weekly:monthly")
    with project.reading() as conn:
        added = SubscriberStore(conn).get("a@example.com")
    assert added is not None and added.time_zone == "America/New_York"
    code, out = run(project, "subscribers", "stats")
    assert code == 0
    assert "Active readers by cadence" in out
    assert "│ weekly │ daily │ 1 │" in out
    assert "│ weekly │ weekly (default) │ 1 │" in out
    assert "│ weekly │ monthly │ 1 │" in out
    with project.transaction() as conn:  # as if the config had withdrawn monthly
        conn.execute(update(tables.reader_cadences).values(cadence="fortnightly").where(
            tables.reader_cadences.c.cadence == "monthly"
        ))  # fmt: skip
    code, out = run(project, "subscribers", "stats")
    assert "│ weekly │ fortnightly (no longer offered) │ 1 │" in out
    code, out = run(project, "subscribers", "show", "a@example.com")
    assert code == 0 and "cadence weekly:daily; time zone America/New_York" in out
    code, out = run(project, "subscribers", "show", "b@example.com")
    assert "cadence each digest's default; time zone the digest's" in out


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--cadence", "fortnightly", "--cadence: unknown cadence 'fortnightly'"),
        ("--cadence", "weekly:daily\r\nX: y", "--cadence: 'X:' is not a cadence"),
        ("--time-zone", "../../etc/passwd", "--time-zone: '../../etc/passwd' is not a time zone"),
    ],
)
def test_bad_values_are_refused_naming_the_option(
    project: Project, option: str, value: str, named: str
) -> None:
    with pytest.raises(DigestError) as refused:
        run(project, "subscribers", "add", "x@example.com", "-t", "data", option, value)
    assert named in str(refused.value)
    with project.reading() as conn:
        assert SubscriberStore(conn).get("x@example.com") is None


def test_a_worker_helps_with_the_unfinished_issue_of_any_cadence_and_plans_none(
    project: Project, environ: dict[str, str]
) -> None:
    """A worker started beside a daily send sends that issue. It used to look for the default
    cadence's issue only: it never helped with this one, and where the default cadence had new
    posts it planned and sent that issue, to readers whose slot had not come (seen in
    bench/cadence_bench.py --workers 2)."""
    run(project, "subscribers", "add", "daily@example.com", "-t", "backend", "--cadence", "daily")
    run(project, "subscribers", "add", "weekly@example.com", "-t", "backend")
    gathering.gather_sources(project)
    planned = issue_cases.plan(project, None, cadence="daily")
    assert planned is not None
    code, out = worker(project, environ)
    assert code == 0, out
    with project.reading() as conn:
        issues = conn.execute(select(db.issues.c.id, db.issues.c.cadence)).all()
        sent_to = conn.execute(select(db.deliveries.c.email)).scalars().all()
    assert [tuple(row) for row in issues] == [(planned.issue.id, "daily")]
    assert sent_to == ["daily@example.com"]
    code, out = worker(project, environ)
    assert code == 0 and "No unfinished issue" in out


def worker(project: Project, environ: dict[str, str]) -> tuple[int, str]:
    """``digest worker`` as its own process would run it: the key from the environment."""
    result = CliRunner(env=environ).invoke(
        app, ["worker", "--config", str(project.config.path)], catch_exceptions=False
    )
    return result.exit_code, " ".join(result.stdout.split())
