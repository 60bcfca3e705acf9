"""The webhook's unsynced transaction: it commits and rolls back like any other, and the
connection it used goes back to the pool as durable as it came (SQLite's synchronous level is
per connection, so a send's next transaction on it must wait for the disk again)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, insert, select

from digest import db


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(db.event_counts)).scalar_one())


def test_it_commits_rolls_back_and_leaves_the_connection_durable(engine: Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            before = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
        else:
            before = conn.exec_driver_sql("SHOW synchronous_commit").scalar_one()
    with db.unsynced_transaction(engine) as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
        else:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "off"
        conn.execute(insert(db.event_counts).values(issue_id=1, kind="open", n=1))
    assert count(engine) == 1
    with pytest.raises(RuntimeError), db.unsynced_transaction(engine) as conn:
        conn.execute(insert(db.event_counts).values(issue_id=2, kind="open", n=1))
        raise RuntimeError
    assert count(engine) == 1
    # The pool hands out the same connection (one is all it opened here).
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == before
        else:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == before
