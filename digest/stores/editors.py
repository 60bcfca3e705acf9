"""Editors: who may use the editor web app. Defined in ``[editor].users`` of the config (hashes
only) or in the database (``digest editors add``); addresses are compared lower-cased.

Authentication lives here, apart from HTTP, so the CLI, the web app and the tests share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, delete, insert, select, update

from digest import db
from digest.config import EditorUserConfig
from digest.errors import DigestError
from digest.passwords import dummy_hash, hash_password, needs_rehash, verify_password


@dataclass(frozen=True)
class Editor:
    email: str
    name: str
    password_hash: str
    origin: Literal["config", "database"]
    last_login_at: datetime | None = None

    @property
    def label(self) -> str:
        return self.name or self.email


def editor_key(email: str) -> str:
    return email.strip().lower()


class EditorStore:
    """Editors of the config file and of the database. An address in both is the config's: the
    file is what the operator controls, so a database row cannot override it."""

    def __init__(self, conn: Connection, configured: Sequence[EditorUserConfig] = ()) -> None:
        self.conn = conn
        self.configured = {
            editor_key(u.email): Editor(editor_key(u.email), u.name, u.password_hash, "config")
            for u in configured
        }

    def get(self, email: str) -> Editor | None:
        key = editor_key(email)
        if key in self.configured:
            return self.configured[key]
        row = self.conn.execute(select(db.editors).where(db.editors.c.email == key)).first()
        if row is None:
            return None
        return Editor(row.email, row.name, row.password_hash, "database", row.last_login_at)

    def all(self) -> list[Editor]:
        stored = [
            Editor(r.email, r.name, r.password_hash, "database", r.last_login_at)
            for r in self.conn.execute(select(db.editors).order_by(db.editors.c.email))
            if r.email not in self.configured
        ]
        return sorted([*self.configured.values(), *stored], key=lambda e: e.email)

    def add(self, email: str, name: str, password_hash: str, now: datetime) -> Editor:
        key = editor_key(email)
        if self.get(key) is not None:
            raise DigestError("is already an editor", where=key)
        self.conn.execute(
            insert(db.editors).values(
                email=key, name=name, password_hash=password_hash, created_at=now
            )
        )
        return Editor(key, name, password_hash, "database")

    def remove(self, email: str) -> bool:
        key = editor_key(email)
        return bool(self.conn.execute(delete(db.editors).where(db.editors.c.email == key)).rowcount)

    def logged_in(self, editor: Editor, password: str, now: datetime) -> None:
        """Note the login; a database editor's hash made at an older cost is renewed now,
        while the password is at hand."""
        if editor.origin != "database":
            return
        values: dict[str, object] = {"last_login_at": now}
        if needs_rehash(editor.password_hash):
            values["password_hash"] = hash_password(password)
        self.conn.execute(
            update(db.editors).where(db.editors.c.email == editor.email).values(**values)
        )


def authenticate(store: EditorStore, email: str, password: str) -> Editor | None:
    """The editor whose password this is, else None, whether the address or the password is
    wrong (an unknown address is checked against a dummy hash, so it costs the same time)."""
    editor = store.get(email) if email else None
    stored = editor.password_hash if editor else dummy_hash()
    matched = verify_password(password, stored)
    return editor if editor is not None and matched else None


# sessions ----------------------------------------------------------------------------------


def open_session(
    conn: Connection, session_id: str, email: str, now: datetime, expires_at: datetime
) -> None:
    """A live session of the editor ``email``; ``session_id`` is the hash of the cookie's
    secret. Sessions that have expired are cleared on the way."""
    conn.execute(delete(db.editor_sessions).where(db.editor_sessions.c.expires_at <= now))
    conn.execute(
        insert(db.editor_sessions).values(
            id=session_id, editor=editor_key(email), created_at=now, expires_at=expires_at
        )
    )


def session_is_open(conn: Connection, session_id: str, email: str, now: datetime) -> bool:
    """True while the session is live: not logged out, not expired, and the editor's."""
    found = conn.execute(
        select(db.editor_sessions.c.id).where(
            db.editor_sessions.c.id == session_id,
            db.editor_sessions.c.editor == editor_key(email),
            db.editor_sessions.c.expires_at > now,
        )
    ).first()
    return found is not None


def close_session(conn: Connection, session_id: str) -> None:
    conn.execute(delete(db.editor_sessions).where(db.editor_sessions.c.id == session_id))
