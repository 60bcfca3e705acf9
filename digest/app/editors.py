"""Use cases of editor accounts kept in the database (``digest editors``); editors of the config
file are listed with them but changed by editing the file. Each owns its transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from digest.app.wiring import Project
from digest.errors import DigestError
from digest.passwords import hash_password
from digest.stores.editors import Editor, EditorStore
from subscribers.importer import normalize_email
from subscribers.names import name_problem


def add(project: Project, email: str, name: str, ask_password: Callable[[], str]) -> Editor:
    """Add a database editor. The address is checked before ``ask_password`` is called, so a
    typo costs no password; only the password's hash is stored."""
    try:
        address = normalize_email(email)
    except ValueError as e:
        raise DigestError(str(e), where=email) from None
    problem = name_problem(name)
    if problem:
        raise DigestError(problem, where="--name")
    password_hash = hash_password(ask_password())
    with project.transaction() as conn:
        return _store(project, conn).add(address, name, password_hash, project.clock())


def listing(project: Project) -> list[Editor]:
    """Every editor, of the config file and of the database, by address."""
    with project.reading() as conn:
        return _store(project, conn).all()


def remove(project: Project, email: str) -> None:
    """Remove a database editor; their sessions end with their next request."""
    with project.transaction() as conn:
        removed = _store(project, conn).remove(email)
    if not removed:
        raise DigestError("is not an editor in the database", where=email)


def _store(project: Project, conn: Connection) -> EditorStore:
    return EditorStore(conn, project.config.file.editor.users)
