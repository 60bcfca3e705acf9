"""Use cases of editor accounts: those kept in the database (``digest editors``; editors of the
config file are listed with them but changed by editing the file), and logging in and out of
the editor app. Each owns its transaction.

Sessions are kept in the database (``editor_sessions``), not only in a signed cookie: logging
out deletes the session, so the cookie, and any copy of it, stops working at once. The cookie
carries a random secret; the table keeps its SHA-256, so reading the table opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection

from digest.app.subscribers import checked_address
from digest.app.wiring import Project
from digest.errors import DigestError
from digest.passwords import hash_password
from digest.stores.editors import (
    Editor,
    EditorStore,
    authenticate,
    close_session,
    open_session,
    session_is_open,
)


def add(project: Project, email: str, name: str, ask_password: Callable[[], str]) -> Editor:
    """Add a database editor. The address is checked before ``ask_password`` is called, so a
    typo costs no password; only the password's hash is stored."""
    address = checked_address(email, name)
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


# logging in and out ------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    editor: Editor
    secret: str
    """The new session's secret, for the cookie; the database keeps its hash."""


def session_id(secret: str) -> str:
    """What the database keeps of a session cookie's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def login(project: Project, email: str, password: str) -> Login | None:
    """The editor and a new session of ``[editor] session_hours``; None for a wrong address or
    password (the same time either way: see :func:`~digest.stores.editors.authenticate`)."""
    now = project.clock()
    lifetime = timedelta(hours=project.config.file.editor.session_hours)
    with project.transaction() as conn:
        store = _store(project, conn)
        editor = authenticate(store, email, password)
        if editor is None:
            return None
        store.logged_in(editor, password, now)
        editor = store.get(editor.email)
        if editor is None:
            return None
        secret = secrets.token_urlsafe(32)
        open_session(conn, session_id(secret), editor.email, now, now + lifetime)
    return Login(editor, secret)


def in_session(project: Project, email: str, secret: str) -> Editor | None:
    """The editor of a live session (not logged out, not expired, still an editor)."""
    with project.reading() as conn:
        if not session_is_open(conn, session_id(secret), email, project.clock()):
            return None
        return _store(project, conn).get(email)


def logout(project: Project, secret: str) -> None:
    """End the session: its cookie, and every copy of it, stops working."""
    with project.transaction() as conn:
        close_session(conn, session_id(secret))
