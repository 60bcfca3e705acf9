"""Releases and watermarks: what each reader of a cadence is owed.

A post is *released* in a digest once, with a number that only grows (``post_releases``), by
the first issue of any cadence that finds it new. A reader's *watermark* is the last release
they were sent or passed over with nothing owed; they are owed the releases after it in their
topics. Most readers never switch and keep no watermark of their own (NULL): theirs is their
cadence's *horizon*, where its last recorded issue ended.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from digest import db
from subscribers import tables as subscriber_tables


def horizon(conn: Connection, digest: str, cadence: str) -> int | None:
    """The release where the cadence's last fully recorded issue ended; None before its first."""
    i = db.issues.c
    found = conn.execute(
        select(func.max(i.release_to)).where(
            i.digest == digest, i.cadence == cadence, i.recorded_at.is_not(None)
        )
    ).scalar_one()
    return None if found is None else int(found)


def watermark_at_switch(
    conn: Connection, subscriber_id: int, digest: str, cadence: str
) -> int | None:
    """A reader's effective watermark in ``cadence``, to be written down when they leave it:
    their own if they have one (they came to the cadence after its last issue was placed),
    else the cadence's horizon; or, if later, the end of an issue of it that holds a delivery
    for them (one still being recorded in waves). None when the cadence has no issue yet and
    they have no watermark of their own."""
    rc = subscriber_tables.reader_cadences.c
    own = conn.execute(
        select(rc.watermark).where(rc.subscriber_id == subscriber_id, rc.digest == digest)
    ).scalar_one_or_none()
    i, d = db.issues.c, db.deliveries.c
    delivered = conn.execute(
        select(func.max(i.release_to))
        .join(db.deliveries, d.issue_id == i.id)
        .where(i.digest == digest, i.cadence == cadence, d.subscriber_id == subscriber_id)
    ).scalar_one()
    base = own if own is not None else horizon(conn, digest, cadence)
    known = [int(value) for value in (base, delivered) if value is not None]
    return max(known) if known else None
