"""The web-archive page cache: one rendered page per issue that went out.

Written once per issue (and again when the config, the templates or the code that render it
change: its ``fingerprint``); read on every "view in browser" and by every link scanner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from digest import db


@dataclass(frozen=True)
class CachedPage:
    digest: str
    number: int
    fingerprint: str
    etag: str
    html: str
    rendered_at: datetime


def cached_page(conn: Connection, digest: str, number: int) -> CachedPage | None:
    row = conn.execute(
        select(db.archive_pages).where(
            db.archive_pages.c.digest == digest, db.archive_pages.c.number == number
        )
    ).first()
    return CachedPage(**row._mapping) if row else None


def store_page(conn: Connection, page: CachedPage) -> None:
    """Keep ``page``, replacing the issue's page of another fingerprint. Two processes that
    rendered the same page at once both succeed: the pages are the same, the last one stays."""
    table = db.archive_pages
    key = (table.c.digest == page.digest) & (table.c.number == page.number)
    conn.execute(delete(table).where(key))
    try:
        with conn.begin_nested():
            conn.execute(insert(table).values(**page.__dict__))
    except IntegrityError:
        pass  # another process stored it between our delete and insert
