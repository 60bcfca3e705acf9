"""The posts of a planned issue as editors see and change them: leave one out, take it back,
move it within its topic.

An issue's post list is frozen when it is planned; editors may still change it *before it is
sent* (:func:`digest.lifecycle.why_not_editable` says until when). An excluded post stays in
``issue_posts`` (marked ``excluded``) so the next issue does not offer it again: an editor
took it out on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from digest import db
from digest.errors import DigestError
from digest.lifecycle import why_not_editable
from digest.stores.issues import issue_row
from digest.stores.posts import topic_ids


@dataclass(frozen=True)
class Entry:
    """One post in one topic of an issue, as the editor sees it."""

    topic: str
    post_id: int
    title: str
    url: str
    position: int
    excluded: bool
    image_url: str | None
    published_at: datetime
    other_topics: tuple[str, ...] = ()


def entries(conn: Connection, issue_id: int) -> list[Entry]:
    """Every post of the issue per topic, excluded ones too, in their order."""
    query = (
        select(
            db.topics.c.slug,
            db.posts.c.id,
            db.posts.c.title,
            db.posts.c.url,
            db.posts.c.image_url,
            db.posts.c.published_at,
            db.issue_posts.c.position,
            db.issue_posts.c.excluded,
        )
        .join(db.issue_posts, db.issue_posts.c.post_id == db.posts.c.id)
        .join(db.topics, db.topics.c.id == db.issue_posts.c.topic_id)
        .where(db.issue_posts.c.issue_id == issue_id)
        .order_by(db.issue_posts.c.position, db.posts.c.id)
    )
    rows = list(conn.execute(query))
    topics_of: dict[int, list[str]] = {}
    for row in rows:
        topics_of.setdefault(row.id, []).append(row.slug)
    return [
        Entry(
            topic=row.slug,
            post_id=row.id,
            title=row.title,
            url=row.url,
            position=row.position,
            excluded=bool(row.excluded),
            image_url=row.image_url,
            published_at=row.published_at,
            other_topics=tuple(t for t in topics_of[row.id] if t != row.slug),
        )
        for row in rows
    ]


def _check_editable(conn: Connection, issue_id: int) -> None:
    row = issue_row(conn, issue_id)
    reason = why_not_editable(row.status, row.approval)
    if reason:
        raise DigestError(f"this issue can no longer change: {reason}")


def set_excluded(conn: Connection, issue_id: int, post_id: int, excluded: bool) -> None:
    """Leave a post out of the issue (in every topic it is in), or take it back.

    The last post cannot be left out: an issue with nothing in it is skipped, not emptied."""
    _check_editable(conn, issue_id)
    if excluded:
        remaining = conn.execute(
            select(func.count(func.distinct(db.issue_posts.c.post_id))).where(
                db.issue_posts.c.issue_id == issue_id,
                db.issue_posts.c.excluded.is_(False),
                db.issue_posts.c.post_id != post_id,
            )
        ).scalar_one()
        if not remaining:
            raise DigestError("this is the issue's last post: skip the issue instead")
    found = conn.execute(
        update(db.issue_posts)
        .where(db.issue_posts.c.issue_id == issue_id, db.issue_posts.c.post_id == post_id)
        .values(excluded=excluded)
    ).rowcount
    if not found:
        raise DigestError(f"post {post_id} is not in this issue")


def move(conn: Connection, issue_id: int, topic: str, post_id: int, step: int) -> None:
    """Move a post ``step`` places within its topic (negative: up), clamped to the ends;
    positions are rewritten as 0…n-1 so they stay dense."""
    _check_editable(conn, issue_id)
    topic_id = topic_ids(conn).get(topic)
    rows = list(
        conn.execute(
            select(db.issue_posts.c.post_id)
            .where(db.issue_posts.c.issue_id == issue_id, db.issue_posts.c.topic_id == topic_id)
            .order_by(db.issue_posts.c.position, db.issue_posts.c.post_id)
        ).scalars()
    )
    if post_id not in rows:
        raise DigestError(f"post {post_id} is not in topic {topic!r} of this issue")
    current = rows.index(post_id)
    rows.insert(max(0, min(len(rows) - 1, current + step)), rows.pop(current))
    for position, pid in enumerate(rows):
        conn.execute(
            update(db.issue_posts)
            .where(
                db.issue_posts.c.issue_id == issue_id,
                db.issue_posts.c.topic_id == topic_id,
                db.issue_posts.c.post_id == pid,
            )
            .values(position=position)
        )
