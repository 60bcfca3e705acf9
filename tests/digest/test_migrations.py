"""The migrations make exactly the tables of ``digest.db``, and go up and back down with data.

The first release squashed the pre-release revisions into one, so there is no data migration
yet. The next one is tested as the pre-release ones were: downgrade to the revision before it,
seed rows with :func:`insert_row` as that revision has its tables (the helpers below show the
shape), ``db.upgrade`` and check the rows came through, then downgrade back and check again,
and end at the head for the fixture. :func:`test_the_initial_revision_goes_down_and_up`
is that pattern for the first revision, whose downgrade drops every table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Connection, Engine, column, insert, inspect, select, text, update
from sqlalchemy import table as sql_table

from digest import db
from digest.errors import DigestError

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


def empty_default_unquoted(
    context: MigrationContext,
    inspected_column: Column[Any],
    metadata_column: Column[Any],
    inspected_default: str | None,
    metadata_default: object,
    rendered_metadata_default: str | None,
) -> bool | None:
    """Alembic's SQLite comparison takes the parentheses and quotes off every reflected
    string default (``('')``) but the empty one, and so reads ``DEFAULT ''`` as differing from
    ``server_default=""``. Every other default is left to Alembic (``None``)."""
    if inspected_default == "('')" and rendered_metadata_default == "":
        return False
    return None


def test_the_migrated_schema_is_the_tables(engine: Engine) -> None:
    """Autogenerate finds nothing to change: tables, columns, types, nullability, server
    defaults, foreign keys, unique constraints and which indexes exist are as the tables say."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": empty_default_unquoted}
        )
        assert compare_metadata(context, db.metadata) == []


def beside_alembic(conn: Connection, schema: str | None) -> dict[str, object]:
    """What Alembic's comparison leaves out, as the database gives it back: the names of keys
    and constraints, and each index's dialect options (a partial index's condition)."""
    inspector = inspect(conn)
    found: dict[str, object] = {}
    for table in db.metadata.tables:
        key = inspector.get_pk_constraint(table, schema=schema)
        found[f"{table} primary key"] = (key["name"], key["constrained_columns"])
        for fk in inspector.get_foreign_keys(table, schema=schema):
            found[f"{table} foreign key {fk['name']}"] = (
                fk["constrained_columns"],
                fk["referred_table"],
                fk["referred_columns"],
                fk.get("options"),
            )
        for unique in inspector.get_unique_constraints(table, schema=schema):
            found[f"{table} unique {unique['name']}"] = unique["column_names"]
        for index in inspector.get_indexes(table, schema=schema):
            options = index.get("dialect_options", {})
            found[f"{table} index {index['name']}"] = (
                index["column_names"],
                bool(index["unique"]),
                {option: str(value) for option, value in options.items()},
            )
    return found


def test_names_and_index_conditions_are_those_of_the_tables(engine: Engine) -> None:
    """Alembic matches keys and constraints by their columns and indexes by their name, so the
    rest of the migrated schema is held against what ``create_all`` makes of the tables, in a
    schema beside it."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("ATTACH DATABASE ':memory:' AS expected")
        else:
            conn.exec_driver_sql("CREATE SCHEMA expected")  # rolled back with the connection
        try:
            db.metadata.create_all(conn.execution_options(schema_translate_map={None: "expected"}))
            migrated, expected = beside_alembic(conn, None), beside_alembic(conn, "expected")
        finally:
            conn.rollback()
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("DETACH DATABASE expected")
    assert "paused_until" in str(migrated["subscribers index ix_subscribers_unsendable"])
    assert migrated["source_states primary key"] == ("pk_source_states", ["location"])
    assert migrated == expected


def test_the_initial_revision_goes_down_and_up(engine: Engine) -> None:
    """With rows in, the downgrade drops every table in an order the foreign keys allow; the
    upgrade makes them again, empty."""
    with engine.begin() as conn:
        issue(conn, 1, "sending")
        reader(conn, 1, "Reader 1")
        batch(conn, 7, 1, 1, "pending")
        insert_row(
            conn,
            "deliveries",
            issue_id=1,
            subscriber_id=1,
            batch_id=7,
            created_at=WHEN,
            changed_at=WHEN,
        )
    command.downgrade(db.alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    db.upgrade(engine)
    assert set(inspect(engine).get_table_names()) == {"alembic_version", *db.metadata.tables}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM issues")).scalar() == 0


def test_a_database_from_before_the_first_release_is_refused_with_what_to_do(
    engine: Engine,
) -> None:
    version = sql_table("alembic_version", column("version_num"))
    with engine.begin() as conn:
        conn.execute(update(version).values(version_num="0013"))
    with pytest.raises(DigestError) as refused:
        db.upgrade(engine)
    assert refused.value.where == "database_url"
    assert "schema revision 0013" in refused.value.message
    assert "recreate it" in refused.value.message
    with engine.connect() as conn:
        assert conn.execute(select(version.c.version_num)).scalar() == "0013"


def test_the_events_rollups_revision_counts_the_events_already_stored(engine: Engine) -> None:
    """Events stored before the rollups existed keep their figures: the upgrade counts them
    into ``event_counts`` (unique readers too), and going back down keeps the events."""
    command.downgrade(db.alembic_config(engine), "faa0a6868547")
    with engine.begin() as conn:
        issue(conn, 1, "sent")
        for n, (kind, email) in enumerate(
            [
                ("open", "A@x.org"),
                ("open", "a@x.org"),
                ("click", "b@x.org"),
                ("delivered", "a@x.org"),
            ]
        ):
            insert_row(
                conn,
                "events",
                sg_event_id=f"e{n}",
                event=kind,
                email=email,
                issue_id=1,
                occurred_at=WHEN,
                received_at=WHEN,
            )
    db.upgrade(engine)
    with engine.connect() as conn:
        counts = {
            str(kind): int(n)
            for kind, n in conn.execute(text("SELECT kind, n FROM event_counts WHERE issue_id = 1"))
        }
        urls = conn.execute(text("SELECT count(*) FROM events WHERE url IS NULL")).scalar()
    assert counts == {"open": 2, "click": 1, "delivered": 1, "unique_open": 1, "unique_click": 1}
    assert urls == 4
    command.downgrade(db.alembic_config(engine), "faa0a6868547")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 4
        assert "event_counts" not in inspect(conn).get_table_names()
    db.upgrade(engine)
