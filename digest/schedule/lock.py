"""Exactly one scheduler per database: a PostgreSQL advisory lock, or a file lock beside the
SQLite file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Engine, func, select, text

from digest.errors import DigestError

# One scheduler per database --------------------------------------------------------------------


class SchedulerBusy(DigestError):
    """Another scheduler holds the lock on this database."""


class SchedulerLock(Protocol):
    def alive(self) -> bool: ...

    def release(self) -> None: ...


LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"digest-generator scheduler").digest()[:8], "big", signed=True
)
"""The PostgreSQL advisory lock key (advisory locks are per database)."""


class PostgresLock:
    """``pg_try_advisory_lock`` on a connection held for the scheduler's life: if the process
    dies, the server ends the session and the lock with it."""

    def __init__(self, engine: Engine) -> None:
        self.conn = engine.connect()
        got = self.conn.execute(select(func.pg_try_advisory_lock(LOCK_KEY))).scalar_one()
        self.conn.commit()
        if not got:
            holder = self.conn.execute(
                text(
                    "SELECT a.pid, a.backend_start FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND CAST(l.classid AS bigint) = :high AND CAST(l.objid AS bigint) = :low"
                ).bindparams(high=(LOCK_KEY >> 32) & 0xFFFFFFFF, low=LOCK_KEY & 0xFFFFFFFF)
            ).first()
            self.conn.rollback()
            self.conn.close()
            who = (
                f" (server process {holder.pid} since {holder.backend_start:%Y-%m-%d %H:%M})"
                if holder is not None
                else ""
            )
            raise SchedulerBusy(
                "another `digest scheduler` is already running on this database"
                + who
                + ": only one may run, or every issue would go out twice",
                where=engine.url.render_as_string(hide_password=True),
            )

    def alive(self) -> bool:
        try:
            self.conn.execute(text("SELECT 1")).scalar_one()
            self.conn.commit()
        except Exception:  # the connection (and so the lock) is gone
            return False
        return True

    def release(self) -> None:
        try:
            self.conn.execute(select(func.pg_advisory_unlock(LOCK_KEY)))
            self.conn.commit()
        finally:
            self.conn.close()


class FileLock:
    """An exclusive ``flock`` on ``<database>.scheduler.lock`` beside the SQLite file. The
    kernel drops it when the process dies, so a crash never leaves a stale lock."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".scheduler.lock")
        self.handle: IO[str] = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip()
            self.handle.close()
            raise SchedulerBusy(
                "another `digest scheduler` is already running on this database"
                + (f" (pid {holder})" if holder else "")
                + ": only one may run, or every issue would go out twice",
                where=str(database),
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()

    def alive(self) -> bool:
        return not self.handle.closed

    def release(self) -> None:
        if not self.handle.closed:
            self.handle.seek(0)
            self.handle.truncate()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def scheduler_running(engine: Engine) -> bool:
    """Whether some process holds the scheduler lock (tried and, if taken, released at once)."""
    try:
        acquire_lock(engine).release()
    except SchedulerBusy:
        return True
    return False


def acquire_lock(engine: Engine) -> SchedulerLock:
    """The lock that makes this process the only scheduler of the database, or SchedulerBusy.

    Two schedulers on one job store run every job twice; the unique (digest, slot) would keep
    the issue single, but two runs still race to gather and to mail editors."""
    if engine.dialect.name == "postgresql":
        return PostgresLock(engine)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return FileLock(Path(database))
    raise DigestError(
        "the scheduler needs a SQLite database file or PostgreSQL", where="database_url"
    )
