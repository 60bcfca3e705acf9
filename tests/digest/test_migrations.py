"""0007 on a database that already holds issues: old issues become hand-made, ungated."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Engine, inspect, text

from digest import db

WHEN = datetime(2026, 11, 16, 7, tzinfo=UTC)


def test_0007_keeps_existing_issues_as_made_by_hand_and_downgrades(engine: Engine) -> None:
    command.downgrade(db.alembic_config(engine), "0006")
    assert "schedule_log" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO issues (digest, number, status, cutoff, created_at) "
                "VALUES ('weekly', 1, 'sent', :t, :t)"
            ),
            {"t": WHEN},
        )
    db.upgrade(engine)
    with engine.connect() as conn:
        slot, approval = conn.execute(text("SELECT slot, approval FROM issues")).one()
    assert (slot, approval) == (None, "none")
    assert "schedule_log" in inspect(engine).get_table_names()
    uniques = {u["name"] for u in inspect(engine).get_unique_constraints("issues")}
    assert "uq_issues_digest_slot" in uniques
    command.downgrade(db.alembic_config(engine), "0006")
    columns = {c["name"] for c in inspect(engine).get_columns("issues")}
    assert "approval" not in columns and "slot" not in columns
    db.upgrade(engine)
