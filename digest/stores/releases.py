"""Releases and watermarks: what each reader of a cadence is owed.

A post is *released* in a digest once, with a number that only grows (``post_releases``), by
the first issue of any cadence that finds it new. A reader's *watermark* is the last release
they were sent or passed over with nothing owed; they are owed the releases after it in their
topics. Most readers never switch and keep no watermark of their own (NULL): theirs is their
cadence's *horizon*, where its last recorded issue ended.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update

from digest import db
from digest.models import StoredPost
from digest.stores.posts import stored_post
from subscribers import tables as subscriber_tables
from subscribers.models import Status

_R = db.post_releases.c


def latest(conn: Connection, digest: str) -> int:
    """The digest's latest release (0 before its first)."""
    found = conn.execute(select(func.max(_R.release)).where(_R.digest == digest)).scalar_one()
    return int(found or 0)


def released_among(conn: Connection, digest: str, post_ids: Collection[int]) -> set[int]:
    """Which of these posts already have a release in the digest."""
    found: set[int] = set()
    ids = list(post_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found.update(
            conn.execute(
                select(_R.post_id).where(_R.digest == digest, _R.post_id.in_(chunk))
            ).scalars()
        )
    return found


def release(conn: Connection, digest: str, numbered: Mapping[int, int], now: datetime) -> None:
    """Store the releases :func:`digest.plan.number_releases` gave."""
    if numbered:
        conn.execute(
            insert(db.post_releases),
            [
                {"digest": digest, "post_id": post_id, "release": number, "released_at": now}
                for post_id, number in numbered.items()
            ],
        )


def last_released_by(conn: Connection, digest: str, moment: datetime) -> int:
    """The digest's last release given at or before ``moment`` (0: none)."""
    found = conn.execute(
        select(func.max(_R.release)).where(_R.digest == digest, _R.released_at <= moment)
    ).scalar_one()
    return int(found or 0)


def released_when_they_joined(
    conn: Connection, digest: str, subscriber_ids: Collection[int]
) -> dict[int, int]:
    """Each reader's :func:`last_released_by` the moment they subscribed: where a reader
    who was never placed anywhere stands."""
    s = subscriber_tables.subscribers.c
    joined = (
        select(func.coalesce(func.max(_R.release), 0))
        .where(_R.digest == digest, _R.released_at <= s.created_at)
        .scalar_subquery()
    )
    return {
        int(reader): int(mark)
        for reader, mark in conn.execute(
            select(s.id, joined).where(subscriber_tables.among(conn, s.id, sorted(subscriber_ids)))
        )
    }


def held_posts(
    conn: Connection, digest: str, topic_slugs: Sequence[str], after: int, upto: int
) -> list[tuple[StoredPost, int]]:
    """The digest's posts released in (after, upto] in these topics, each with its release."""
    query = (
        select(db.posts, db.topics.c.slug, _R.release)
        .join(db.post_releases, and_(_R.post_id == db.posts.c.id, _R.digest == digest))
        .join(db.post_topics, db.post_topics.c.post_id == db.posts.c.id)
        .join(db.topics, db.topics.c.id == db.post_topics.c.topic_id)
        .where(db.topics.c.slug.in_(topic_slugs), _R.release > after, _R.release <= upto)
        .order_by(_R.release)
    )
    rows: dict[int, tuple[object, list[str], int]] = {}
    for row in conn.execute(query):
        rows.setdefault(row.id, (row, [], int(row.release)))[1].append(row.slug)
    return [(stored_post(row, tuple(slugs)), r) for row, slugs, r in rows.values()]  # type: ignore[arg-type]


def cadence_base(conn: Connection, digest: str, cadence: str, start: int) -> int:
    """Where a cadence's readers without a watermark of their own stand: its horizon; before
    its first recorded issue, the base of a skipped one (its readers never got it), else
    ``start`` (where a cadence's first issue begins)."""
    found = horizon(conn, digest, cadence)
    if found is not None:
        return found
    i = db.issues.c
    skipped = conn.execute(
        select(func.min(i.release_base)).where(i.digest == digest, i.cadence == cadence)
    ).scalar_one()
    return start if skipped is None else min(int(skipped), start)


def lowest_own_watermark(conn: Connection, digest: str, cadence: str, now: datetime) -> int | None:
    """The lowest watermark of the cadence's readers who would get its issue (active, not
    paused) and have one of their own; None when none has."""
    rc, s = subscriber_tables.reader_cadences.c, subscriber_tables.subscribers.c
    found = conn.execute(
        select(func.min(rc.watermark))
        .join(subscriber_tables.subscribers, s.id == rc.subscriber_id)
        .where(
            rc.digest == digest,
            rc.cadence == cadence,
            rc.watermark.is_not(None),
            s.status == Status.ACTIVE.value,
            or_(s.paused_until.is_(None), s.paused_until <= now),
        )
    ).scalar_one()
    return None if found is None else int(found)


def write_down_horizon(conn: Connection, digest: str, cadence: str, base: int) -> int:
    """The cadence's readers who stand at its horizon (a row, no watermark of their own) get
    ``base`` written down as their own watermark: their place no longer follows the issue's
    base (see :func:`digest.app.issues.where_non_choosers_stand`). How many."""
    rc = subscriber_tables.reader_cadences.c
    return int(
        conn.execute(
            update(subscriber_tables.reader_cadences)
            .where(rc.digest == digest, rc.cadence == cadence, rc.watermark.is_(None))
            .values(watermark=base)
        ).rowcount
    )


def settle_watermarks(conn: Connection, issue_id: int) -> int:
    """When an issue's recording has finished: the readers of its cadence with a watermark of
    their own inside the issue's range who got the issue (a delivery in it), or whom it owed
    nothing (no post of their topics released after their watermark), are at the cadence's
    new horizon: their watermark becomes NULL. Whoever was owed something and did not get it
    (came to the cadence after the placement, paused, a watermark below the range) keeps
    theirs. One UPDATE, touching only readers with a watermark of their own; the number
    settled."""
    i = db.issues.c
    head = conn.execute(
        select(i.digest, i.cadence, i.release_from, i.release_to).where(i.id == issue_id)
    ).one()
    if head.release_to is None:
        return 0
    rc = subscriber_tables.reader_cadences.c
    d, ip = db.deliveries.c, db.issue_posts.c
    sub = subscriber_tables.subscriptions.c
    delivered = exists().where(d.issue_id == issue_id, d.subscriber_id == rc.subscriber_id)
    owed = (
        exists()
        .select_from(
            db.issue_posts.join(
                db.post_releases, and_(_R.post_id == ip.post_id, _R.digest == head.digest)
            ).join(subscriber_tables.subscriptions, sub.topic_id == ip.topic_id)
        )
        .where(
            ip.issue_id == issue_id,
            ip.excluded.is_(False),
            sub.subscriber_id == rc.subscriber_id,
            _R.release > rc.watermark,
        )
    )
    return int(
        conn.execute(
            update(subscriber_tables.reader_cadences)
            .where(
                rc.digest == head.digest,
                rc.cadence == head.cadence,
                rc.watermark.is_not(None),
                rc.watermark >= head.release_from,
                rc.watermark <= head.release_to,
                or_(delivered, ~owed),
            )
            .values(watermark=None)
        ).rowcount
    )


def horizon(conn: Connection, digest: str, cadence: str) -> int | None:
    """The release where the cadence's last fully recorded issue ended. Before its first:
    where the digest's one schedule (the cadence '') ended, if it sent anything, since that is
    where every reader stood when the digest began to offer cadences (turning them on owes
    nobody what they already got); else None."""
    i = db.issues.c
    for name in (cadence, "") if cadence else (cadence,):
        found = conn.execute(
            select(func.max(i.release_to)).where(
                i.digest == digest, i.cadence == name, i.recorded_at.is_not(None)
            )
        ).scalar_one()
        if found is not None:
            return int(found)
    return None


def watermarks_at_switch(
    conn: Connection,
    subscriber_ids: Collection[int],
    digest: str,
    cadence: str,
    unchosen_at: int | None = None,
) -> dict[int, int | None]:
    """Each reader's effective watermark in ``cadence``, to be written down when they leave it:
    their own if they have one (they came to the cadence after its last issue was placed),
    else the cadence's horizon; or, if later, the end of an issue of it that holds a delivery
    for them (one still being recorded in waves). None when the cadence has no issue yet and
    they have no watermark of their own. Three queries whatever the number of readers: an
    import switches thousands at once.
    ``unchosen_at``: where the readers without a row for the digest stand, when it is not
    the cadence's horizon (they left the default after it changed, see
    :func:`digest.app.issues.previous_default_base`)."""
    ids = sorted(set(subscriber_ids))
    if not ids:
        return {}
    rc = subscriber_tables.reader_cadences.c
    own: dict[int, int | None] = dict(
        conn.execute(
            select(rc.subscriber_id, rc.watermark).where(
                subscriber_tables.among(conn, rc.subscriber_id, ids), rc.digest == digest
            )
        ).all()
    )
    i, d = db.issues.c, db.deliveries.c
    delivered: dict[int, int | None] = dict(
        conn.execute(
            select(d.subscriber_id, func.max(i.release_to))
            .join(db.deliveries, d.issue_id == i.id)
            .where(
                i.digest == digest,
                i.cadence == cadence,
                subscriber_tables.among(conn, d.subscriber_id, ids),
            )
            .group_by(d.subscriber_id)
        ).all()
    )
    stands = horizon(conn, digest, cadence)
    marks: dict[int, int | None] = {}
    for subscriber_id in ids:
        mine = own.get(subscriber_id)
        if mine is None:
            chose = subscriber_id in own
            mine = stands if chose or unchosen_at is None else unchosen_at
        known = [int(v) for v in (mine, delivered.get(subscriber_id)) if v is not None]
        marks[subscriber_id] = max(known) if known else None
    return marks
