"""The editor account use cases the CLI calls, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from digest import db
from digest.app import editors
from digest.app.wiring import Project
from digest.config import Config
from digest.errors import DigestError
from digest.passwords import verify_password
from tests.conftest import FixedClock

PASSWORD = "correct horse battery"


@pytest.fixture
def project(example_config: Config, clock: FixedClock, engine: Engine) -> Project:
    return Project.open(example_config, clock=clock, engine=engine)


def never_asked() -> str:
    raise AssertionError("the password was asked for a bad address")


def test_add_list_and_remove_a_database_editor(project: Project) -> None:
    added = editors.add(project, "Ed@Example.com", "Ed", lambda: PASSWORD)
    assert (added.email, added.name, added.origin) == ("ed@example.com", "Ed", "database")
    assert verify_password(PASSWORD, added.password_hash)
    with pytest.raises(DigestError, match="is already an editor"):
        editors.add(project, "ed@example.com", "", lambda: PASSWORD)
    with pytest.raises(DigestError, match="must have an @-sign"):
        editors.add(project, "not an address", "", never_asked)
    assert [(e.email, e.origin) for e in editors.listing(project)] == [
        ("ed@example.com", "database")
    ]
    editors.remove(project, "ed@example.com")
    assert editors.listing(project) == []
    with pytest.raises(DigestError, match="is not an editor in the database"):
        editors.remove(project, "ed@example.com")


def test_sessions_live_in_the_database_until_logout_or_expiry(
    project: Project, clock: FixedClock
) -> None:
    editors.add(project, "ed@example.com", "Ed", lambda: PASSWORD)
    assert editors.login(project, "ed@example.com", "wrong") is None
    first = editors.login(project, "Ed@Example.com", PASSWORD)
    second = editors.login(project, "ed@example.com", PASSWORD)
    assert first is not None and second is not None and first.secret != second.secret
    assert editors.in_session(project, "ed@example.com", first.secret) == first.editor
    assert editors.in_session(project, "someone@example.com", first.secret) is None
    with project.engine.connect() as conn:
        stored = set(conn.execute(select(db.editor_sessions.c.id)).scalars())
    assert stored == {editors.session_id(first.secret), editors.session_id(second.secret)}
    assert first.secret not in stored  # the table's rows open no session

    editors.logout(project, first.secret)
    assert editors.in_session(project, "ed@example.com", first.secret) is None
    assert editors.in_session(project, "ed@example.com", second.secret) is not None
    clock.now += timedelta(hours=12)  # [editor] session_hours
    assert editors.in_session(project, "ed@example.com", second.secret) is None
    third = editors.login(project, "ed@example.com", PASSWORD)
    assert third is not None
    with project.engine.connect() as conn:  # logging in clears the expired sessions
        assert conn.execute(select(func.count()).select_from(db.editor_sessions)).scalar() == 1
