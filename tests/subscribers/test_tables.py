"""The bulk helpers of the subscriber tables, on SQLite and (when DIGEST_TEST_DATABASE_URL is
set) PostgreSQL, where they take another path: arrays of column values, unnested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, StatementError

from digest.models import Topic
from digest.stores import posts as post_store
from subscribers import tables
from tests.conftest import empty_database

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
S = tables.subscribers


def new_row(n: int) -> dict[str, object]:
    """Varied rows: names with quotes, braces, commas and characters outside ASCII (what an
    array literal would have to escape), dates in other zones, and NULLs in every nullable
    column some of the time."""
    kathmandu = timezone(timedelta(hours=5, minutes=45))
    return {
        "email": f"Reader.{n}@Example.org",
        "email_key": f"reader.{n}@example.org",
        "name": ["", 'Zoë "Z" O\'Neil', "{a,b}", "NULL", "\\back\\", "李 雷"][n % 6],
        "status": "active" if n % 3 else "pending",
        "source": f"file-{n % 4}",
        "created_at": NOW - timedelta(days=n),
        "changed_at": (NOW - timedelta(minutes=n)).astimezone(kathmandu),
        "confirmed_at": None if n % 2 else NOW,
        "unsubscribed_at": None,
        "paused_until": NOW + timedelta(days=1) if n % 5 == 0 else None,
        "time_zone": None if n % 7 else "Asia/Kathmandu",
    }


@pytest.mark.parametrize("count", [1, 1201])
def test_rows_inserted_in_bulk_read_back_as_they_were_given(engine: Engine, count: int) -> None:
    given = [new_row(n) for n in range(count)]
    with engine.begin() as conn:
        post_store.sync_topics(conn, [Topic("data", "Data")])
        topic = conn.execute(select(tables.topics.c.id)).scalar_one()
        returned = tables.insert_rows(conn, S, given, S.c.id, S.c.email_key)
        links = [{"subscriber_id": sid, "topic_id": topic} for sid, _ in returned]
        tables.insert_rows(conn, tables.subscriptions, links)
    with engine.connect() as conn:
        stored = {row.email_key: row._asdict() for row in conn.execute(select(S).order_by(S.c.id))}
        linked = set(conn.execute(select(tables.subscriptions.c.subscriber_id)).scalars())
    assert sorted(key for _, key in returned) == sorted(str(r["email_key"]) for r in given)
    assert linked == {sid for sid, _ in returned}
    for row in given:
        kept = stored[str(row["email_key"])]
        assert kept == {**row, "id": kept["id"]}
        assert kept["changed_at"].utcoffset() == timedelta(0)


def test_nothing_to_insert_writes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        assert tables.insert_rows(conn, S, [], S.c.id) == []
        assert conn.execute(select(S.c.id)).first() is None


def test_a_value_too_long_is_refused_not_cut(tmp_path: Path) -> None:
    """An array cast to VARCHAR(320)[] would cut the value short without a word. PostgreSQL
    only: SQLite keeps text of any length whatever the column says."""
    engine = empty_database("postgresql", tmp_path)
    too_long = {**new_row(1), "email_key": "x" * 321}
    with pytest.raises(DBAPIError), engine.begin() as conn:
        tables.insert_rows(conn, S, [new_row(0), too_long], S.c.id)
    with engine.connect() as conn:
        assert conn.execute(select(S.c.id)).first() is None
    engine.dispose()


def test_a_naive_date_is_refused(engine: Engine) -> None:
    naive = {**new_row(1), "created_at": datetime(2026, 12, 4, 9, 30)}
    with pytest.raises(StatementError, match="naive datetime"), engine.begin() as conn:
        tables.insert_rows(conn, S, [naive], S.c.id)


def test_among_matches_exactly_the_values_named(engine: Engine) -> None:
    longest = "k" * 308 + "@example.org"
    assert len(longest) == 320  # the column's length
    with engine.begin() as conn:
        given = [new_row(n) for n in range(5)] + [{**new_row(5), "email_key": longest}]
        tables.insert_rows(conn, S, given)
        ids = dict(conn.execute(select(S.c.email_key, S.c.id)).all())
    stored_key = "reader.1@example.org"
    asked = [
        stored_key,
        "reader.3@example.org",
        "READER.2@example.org",
        longest + "x",
        "",
        "nobody@example.org",
    ]
    with engine.connect() as conn:
        found = set(
            conn.execute(
                select(S.c.email_key).where(tables.among(conn, S.c.email_key, asked))
            ).scalars()
        )
        none = conn.execute(select(S.c.id).where(tables.among(conn, S.c.id, []))).all()
        by_id = set(
            conn.execute(
                select(S.c.id).where(tables.among(conn, S.c.id, [ids[stored_key], -1]))
            ).scalars()
        )
    assert found == {stored_key, "reader.3@example.org"}
    assert none == []
    assert by_id == {ids[stored_key]}
