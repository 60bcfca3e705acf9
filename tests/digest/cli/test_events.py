"""`digest events prune`: the raw events past [events] keep_days go, the figures stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from digest import db
from digest.app.wiring import Project
from digest.cli import app
from digest.events import apply_events, issue_counts
from digest.stores import engagement


def test_prune_deletes_old_raw_events_and_keeps_the_figures(example_project: Project) -> None:
    db.upgrade(example_project.engine)
    now = datetime.now(UTC)
    old, new = now - timedelta(days=31), now - timedelta(days=29)
    with example_project.transaction() as conn:
        for when, prefix in ((old, "old"), (new, "new")):
            apply_events(
                conn,
                [
                    {
                        "event": "delivered",
                        "email": "a@example.com",
                        "sg_event_id": f"{prefix}-{i}",
                        "issue_id": 7,
                    }
                    for i in range(3)
                ],
                when,
            )
    result = CliRunner().invoke(
        app,
        ["events", "prune", "--config", str(example_project.config.path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stdout
    assert "Deleted 3 raw event(s) older than 30 day(s)" in result.stdout
    with example_project.reading() as conn:
        assert engagement.raw_count(conn) == 3
        assert issue_counts(conn, 7) == {"delivered": 6}
