"""What editors change in a planned issue, and the figures they read (database side).

An issue's post list is frozen when it is planned; editors may still leave posts out and
reorder them *before it is sent*: after approval, once sending has started, or once it was
skipped, the list is final (the readers' emails must equal what was approved). An excluded
post stays in ``issue_posts`` (marked ``excluded``) so it is not offered again by the next
issue: an editor took it out on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from digest import db, repository
from digest.errors import DigestError
from digest.events import issue_counts
from digest.send import reporting

DELIVERY_FIGURES = ("submitted", "failed", "ambiguous")
EVENT_FIGURES = {
    "delivered": ("delivered",),
    "bounced": ("bounce", "dropped"),
    "complained": ("spamreport",),
    "opened": ("open",),
    "clicked": ("click",),
}
"""Figure → webhook event kinds. Opens and clicks count events, not distinct readers."""


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


@dataclass(frozen=True)
class Figures:
    """One issue's ledger (submitted, failed, ambiguous) and webhook events (delivered, …)."""

    recipients: int
    counts: dict[str, int]


def editable(row: repository.IssueRow) -> str | None:
    """Why the issue's posts can no longer change, or None while they can."""
    if row.status == repository.ISSUE_SENT:
        return "it has been sent"
    if row.status == repository.ISSUE_SKIPPED or row.approval == "skipped":
        return "it was skipped"
    if row.status == repository.ISSUE_SENDING:
        return "sending has started"
    if row.approval == "approved":
        return "it is approved (hold it to change it)"
    return None


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
    reason = editable(repository.issue_row(conn, issue_id))
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
    topic_id = repository.topic_ids(conn).get(topic)
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


def issues_of(conn: Connection, digest: str, limit: int = 100) -> list[repository.IssueRow]:
    """The digest's issues, newest first."""
    rows = conn.execute(
        select(db.issues)
        .where(db.issues.c.digest == digest)
        .order_by(db.issues.c.number.desc())
        .limit(limit)
    )
    return [repository.IssueRow(**row._mapping) for row in rows]


def last_sent(conn: Connection, digest: str) -> repository.IssueRow | None:
    """The digest's newest issue that went out (skipped and unsent ones are passed over)."""
    row = conn.execute(
        select(db.issues)
        .where(db.issues.c.digest == digest, db.issues.c.status == repository.ISSUE_SENT)
        .order_by(db.issues.c.number.desc())
        .limit(1)
    ).first()
    return repository.IssueRow(**row._mapping) if row else None


def figures(conn: Connection, issue_id: int) -> Figures:
    deliveries = reporting.counts(conn, issue_id)
    events = issue_counts(conn, issue_id)
    counts = {name: deliveries.get(name, 0) for name in DELIVERY_FIGURES}
    for name, kinds in EVENT_FIGURES.items():
        counts[name] = sum(events.get(kind, 0) for kind in kinds)
    return Figures(sum(deliveries.values()), counts)
