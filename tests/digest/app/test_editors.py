"""The editor account use cases the CLI calls, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

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
