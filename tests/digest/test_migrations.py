"""Migrations on databases that already hold data, up and back down."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, Engine, column, insert, inspect, text
from sqlalchemy import table as sql_table

from digest import db
from digest.send import recording, reporting

WHEN = datetime(2026, 11, 16, 7, tzinfo=UTC)


def insert_row(conn: Connection, table: str, /, **values: object) -> None:
    """A row as the revision under test has its table (in SQL: the models are the newest)."""
    conn.execute(insert(sql_table(table, *map(column, values))).values(values))


def issue(conn: Connection, number: int, status: str) -> None:
    insert_row(
        conn,
        "issues",
        id=number,
        digest="weekly",
        number=number,
        status=status,
        cutoff=WHEN,
        created_at=WHEN,
    )


def reader(conn: Connection, id_: int, name: str = "") -> None:
    email = f"r{id_}@example.com"
    insert_row(
        conn,
        "subscribers",
        id=id_,
        email=email,
        email_key=email,
        name=name,
        status="active",
        created_at=WHEN,
        changed_at=WHEN,
    )


def batch(conn: Connection, id_: int, issue_id: int, size: int, status: str) -> None:
    insert_row(
        conn,
        "send_batches",
        id=id_,
        issue_id=issue_id,
        segment="data",
        size=size,
        status=status,
        created_at=WHEN,
        changed_at=WHEN,
    )


def test_0007_keeps_existing_issues_as_made_by_hand_and_downgrades(engine: Engine) -> None:
    command.downgrade(db.alembic_config(engine), "0006")
    assert "schedule_log" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        issue(conn, 1, "sent")
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


def test_0010_lets_deliveries_follow_their_batch_and_back(engine: Engine) -> None:
    command.downgrade(db.alembic_config(engine), "0009")
    with engine.begin() as conn:
        issue(conn, 1, "sending")
        for i in (1, 2, 3):
            reader(conn, i)
        batch(conn, 7, 1, 3, "ambiguous")
        for i, status in ((1, "ambiguous"), (2, "ambiguous"), (3, "failed")):
            insert_row(
                conn,
                "deliveries",
                issue_id=1,
                subscriber_id=i,
                segment="data",
                status=status,
                batch_id=7,
                created_at=WHEN,
                changed_at=WHEN,
                ambiguities=int(status == "ambiguous"),
            )
    db.upgrade(engine)
    assert inspect(engine).get_foreign_keys("deliveries") == []
    with engine.begin() as conn:
        assert reporting.counts(conn, 1) == {"ambiguous": 2, "failed": 1}
        assert reporting.ambiguities(conn, 1) == 3  # every delivery of the batch, as an upper bound
        conn.execute(text("UPDATE send_batches SET status = 'submitting'"))
    command.downgrade(db.alembic_config(engine), "0009")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT subscriber_id, status, segment, ambiguities FROM deliveries "
                "ORDER BY subscriber_id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, "pending", "data", 1),
        (2, "pending", "data", 1),
        (3, "failed", "data", 0),
    ]
    assert len(inspect(engine).get_foreign_keys("deliveries")) == 3
    db.upgrade(engine)


def test_0011_keys_deliveries_by_issue_and_subscriber_and_back(engine: Engine) -> None:
    command.downgrade(db.alembic_config(engine), "0010")
    with engine.begin() as conn:
        for i in (1, 2):
            insert_row(
                conn,
                "deliveries",
                issue_id=1,
                subscriber_id=i,
                batch_id=7,
                created_at=WHEN,
                changed_at=WHEN,
            )
    db.upgrade(engine)
    key = inspect(engine).get_pk_constraint("deliveries")
    assert key["constrained_columns"] == ["issue_id", "subscriber_id"]
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT subscriber_id FROM deliveries ORDER BY 1")).scalars()
        assert list(kept) == [1, 2]
    command.downgrade(db.alembic_config(engine), "0010")
    assert inspect(engine).get_pk_constraint("deliveries")["constrained_columns"] == ["id"]
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM deliveries")).scalars().all()
    assert len(set(ids)) == 2 and None not in ids
    db.upgrade(engine)


def test_0012_marks_issues_already_sending_or_sent_as_recorded_and_back(engine: Engine) -> None:
    command.downgrade(db.alembic_config(engine), "0011")
    with engine.begin() as conn:
        for number, status in ((1, "sent"), (2, "sending"), (3, "planned")):
            issue(conn, number, status)
        batch(conn, 7, 2, 1, "pending")
    db.upgrade(engine)
    with engine.connect() as conn:
        assert [recording.recorded(conn, n) for n in (1, 2, 3)] == [True, True, False]
    command.downgrade(db.alembic_config(engine), "0011")
    assert "recorded_at" not in {c["name"] for c in inspect(engine).get_columns("issues")}
    with engine.connect() as conn:
        # Dropping the columns in place kept the issues' batches.
        assert conn.execute(text("SELECT id FROM send_batches")).scalars().all() == [7]
    db.upgrade(engine)


def test_0013_gives_deliveries_still_to_send_their_address_and_back(engine: Engine) -> None:
    command.downgrade(db.alembic_config(engine), "0012")
    with engine.begin() as conn:
        issue(conn, 1, "sending")
        for i in (1, 2):
            reader(conn, i, f"Reader {i}")
            batch(conn, i, 1, 1, "pending" if i == 1 else "submitted")
            insert_row(
                conn,
                "deliveries",
                issue_id=1,
                subscriber_id=i,
                batch_id=i,
                created_at=WHEN,
                changed_at=WHEN,
            )
    db.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT subscriber_id, email, name FROM deliveries ORDER BY 1")
        ).all()
        # The one still to send gets its address; nothing reads the sent one's again.
        assert [tuple(r) for r in rows] == [(1, "r1@example.com", "Reader 1"), (2, "", "")]
    assert "ix_subscribers_unsendable" in {
        i["name"] for i in inspect(engine).get_indexes("subscribers")
    }
    command.downgrade(db.alembic_config(engine), "0012")
    assert "email" not in {c["name"] for c in inspect(engine).get_columns("deliveries")}
    db.upgrade(engine)
