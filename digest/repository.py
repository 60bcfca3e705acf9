"""Reading and writing topics, posts, source states and issues (the database adapter of gather
and plan). Subscribers have their own store in :mod:`subscribers.store`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update

from digest import db
from digest.errors import ApprovalError
from digest.gather.fetch import Validators
from digest.models import HeroImage, Issue, IssueSection, Post, StoredPost, Topic

AnyRow = Row[*tuple[Any, ...]]


def sync_topics(conn: Connection, topics: Sequence[Topic]) -> dict[str, int]:
    """Make the table hold every configured topic (renames follow the config); slug → id."""
    existing = {row.slug: row for row in conn.execute(select(db.topics))}
    for topic in topics:
        row = existing.get(topic.slug)
        if row is None:
            conn.execute(insert(db.topics).values(slug=topic.slug, name=topic.name))
        elif row.name != topic.name:
            conn.execute(update(db.topics).where(db.topics.c.id == row.id).values(name=topic.name))
    return {row.slug: row.id for row in conn.execute(select(db.topics.c.slug, db.topics.c.id))}


def topic_ids(conn: Connection) -> dict[str, int]:
    return {row.slug: row.id for row in conn.execute(select(db.topics.c.slug, db.topics.c.id))}


def source_validators(conn: Connection, location: str) -> Validators:
    row = conn.execute(
        select(db.source_states).where(db.source_states.c.location == location)
    ).first()
    return Validators(row.etag, row.last_modified) if row else Validators()


def save_source_state(
    conn: Connection, location: str, validators: Validators, now: datetime, error: str | None
) -> None:
    values = {"checked_at": now, "last_error": error}
    if error is None:
        values |= {"etag": validators.etag, "last_modified": validators.last_modified}
    found = conn.execute(
        update(db.source_states).where(db.source_states.c.location == location).values(**values)
    ).rowcount
    if not found:
        conn.execute(insert(db.source_states).values(location=location, **values))


@dataclass(frozen=True)
class StoreCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


def store_posts(
    conn: Connection, posts: Sequence[Post], topic_id: dict[str, int], now: datetime
) -> StoreCounts:
    """Insert new posts, update changed ones (same uid or URL, new content hash), add topics.

    An updated post keeps its ``first_seen_at`` and its place in earlier issues: it is not new.
    Reads and inserts go in chunks, so thousands of posts cost a handful of statements.
    """
    new = updated = unchanged = 0
    for start in range(0, len(posts), STORE_CHUNK):
        chunk = posts[start : start + STORE_CHUNK]
        known = _known_posts(conn, chunk)
        fresh = [p for p in chunk if _match(known, p) is None]
        ids: dict[str, int] = {}
        if fresh:
            rows = [_post_values(p) | {"updated_at": now, "first_seen_at": now} for p in fresh]
            inserted = conn.execute(
                insert(db.posts).returning(
                    db.posts.c.id, db.posts.c.uid, sort_by_parameter_order=True
                ),
                rows,
            )
            ids = {row.uid: row.id for row in inserted}
            new += len(fresh)
        links: list[dict[str, int]] = []
        existing_topics = _topics_of(conn, [row.id for row in known.values()])
        for post in chunk:
            row = _match(known, post)
            if row is None:
                post_id = ids[post.uid]
                have: set[int] = set()
            else:
                post_id = row.id
                have = existing_topics.get(post_id, set())
                if row.content_hash != post.content_hash:
                    values = _post_values(post) | {"updated_at": now}
                    values.pop("uid")
                    if not post.dated:
                        values.pop("published_at")  # stays when we first saw it
                    conn.execute(update(db.posts).where(db.posts.c.id == post_id).values(**values))
                    updated += 1
                else:
                    unchanged += 1
            links += [
                {"post_id": post_id, "topic_id": topic_id[slug]}
                for slug in post.topics
                if topic_id[slug] not in have
            ]
        if links:
            conn.execute(insert(db.post_topics), links)
    return StoreCounts(new, updated, unchanged)


STORE_CHUNK = 500


def _known_posts(conn: Connection, posts: Sequence[Post]) -> dict[str, AnyRow]:
    """Stored posts matching any of these by uid or URL, keyed ``uid:…`` and ``url:…``."""
    uids = [p.uid for p in posts]
    urls = [p.url for p in posts]
    query = select(db.posts.c.id, db.posts.c.uid, db.posts.c.url, db.posts.c.content_hash).where(
        db.posts.c.uid.in_(uids) | db.posts.c.url.in_(urls)
    )
    known: dict[str, AnyRow] = {}
    for row in conn.execute(query):
        known[f"uid:{row.uid}"] = row
        known.setdefault(f"url:{row.url}", row)
    return known


def _match(known: dict[str, AnyRow], post: Post) -> AnyRow | None:
    return known.get(f"uid:{post.uid}") or known.get(f"url:{post.url}")


def _topics_of(conn: Connection, post_ids: Sequence[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    if post_ids:
        query = select(db.post_topics.c.post_id, db.post_topics.c.topic_id).where(
            db.post_topics.c.post_id.in_(post_ids)
        )
        for post_id, topic in conn.execute(query):
            out.setdefault(post_id, set()).add(topic)
    return out


def _post_values(post: Post) -> dict[str, object]:
    image = post.image
    return {
        "uid": post.uid,
        "url": post.url,
        "title": post.title,
        "excerpt": post.excerpt,
        "author": post.author,
        "image_url": image.url if image else None,
        "image_alt": image.alt if image else None,
        "image_width": image.width if image else None,
        "image_height": image.height if image else None,
        "reading_minutes": post.reading_minutes,
        "content_hash": post.content_hash,
        "source": post.source,
        "published_at": post.published_at,
    }


def _stored(r: AnyRow, topics: tuple[str, ...]) -> StoredPost:
    image = (
        HeroImage(r.image_url, r.image_alt or r.title, r.image_width, r.image_height)
        if r.image_url
        else None
    )
    post = Post(
        uid=r.uid,
        url=r.url,
        title=r.title,
        excerpt=r.excerpt,
        published_at=r.published_at,
        topics=topics,
        author=r.author,
        image=image,
        reading_minutes=r.reading_minutes,
        content_hash=r.content_hash,
        source=r.source,
    )
    return StoredPost(id=r.id, post=post, first_seen_at=r.first_seen_at)


def candidate_posts(
    conn: Connection, topic_slugs: Sequence[str], after: datetime | None, until: datetime
) -> list[StoredPost]:
    """Posts of these topics published in ``(after, until]``, newest first (a superset of what
    :func:`digest.plan.is_new` keeps)."""
    query = (
        select(db.posts, db.topics.c.slug)
        .join(db.post_topics, db.post_topics.c.post_id == db.posts.c.id)
        .join(db.topics, db.topics.c.id == db.post_topics.c.topic_id)
        .where(db.topics.c.slug.in_(topic_slugs), db.posts.c.published_at <= until)
        .order_by(db.posts.c.published_at.desc(), db.posts.c.id)
    )
    if after is not None:
        query = query.where(db.posts.c.published_at > after)
    rows: dict[int, tuple[AnyRow, list[str]]] = {}
    for row in conn.execute(query):
        rows.setdefault(row.id, (row, []))[1].append(row.slug)
    return [_stored(row, tuple(slugs)) for row, slugs in rows.values()]


def posts_in_issues(conn: Connection, digest: str) -> set[int]:
    """Posts an issue of this digest already holds. A skipped issue never reached anyone, so
    its posts are not counted: they are candidates for the next issue again."""
    query = (
        select(db.issue_posts.c.post_id)
        .join(db.issues, db.issues.c.id == db.issue_posts.c.issue_id)
        .where(db.issues.c.digest == digest, db.issues.c.status != ISSUE_SKIPPED)
    )
    return set(conn.execute(query).scalars())


@dataclass(frozen=True)
class IssueRow:
    id: int
    digest: str
    number: int
    status: str
    cutoff: datetime
    created_at: datetime
    sent_at: datetime | None
    slot: datetime | None = None
    """The scheduled instant (UTC) this issue was made for; None when made by hand."""
    approval: str = "none"
    approval_by: str | None = None
    approval_at: datetime | None = None
    approval_note: str | None = None
    recorded_at: datetime | None = None
    """When every delivery was recorded (see :func:`digest.send.recording.record`)."""
    recorder: str | None = None
    recorder_until: datetime | None = None


ISSUE_PLANNED = "planned"
ISSUE_SENDING = "sending"
ISSUE_SENT = "sent"
ISSUE_SKIPPED = "skipped"
"""Not approved by its slot (or skipped by an editor): never sent, its posts free again."""

APPROVAL_NONE = "none"
"""No gate: made by hand, or scheduled under the ``auto`` policy."""
APPROVAL_PENDING = "pending"
"""Waiting for an editor; skipped when its slot passes unapproved."""
APPROVAL_APPROVED = "approved"
APPROVAL_HELD = "held"
"""Never sent by the scheduler; an editor sends it (approve in the editor app, or
``digest send --force``)."""
APPROVAL_SKIPPED = "skipped"
APPROVALS = (APPROVAL_NONE, APPROVAL_PENDING, APPROVAL_APPROVED, APPROVAL_HELD, APPROVAL_SKIPPED)


def last_issue(conn: Connection, digest: str) -> IssueRow | None:
    """The newest issue that counts: skipped issues are left out, because the next issue's
    posts are those new since the last issue readers could have got (its cutoff)."""
    row = conn.execute(
        select(db.issues)
        .where(db.issues.c.digest == digest, db.issues.c.status != ISSUE_SKIPPED)
        .order_by(db.issues.c.number.desc())
    ).first()
    return IssueRow(**row._mapping) if row else None


def last_number(conn: Connection, digest: str) -> int:
    """The highest issue number used, skipped issues included: numbers are never reused (the
    skipped issue keeps its row for the record), so readers may see a gap."""
    found = conn.execute(
        select(func.max(db.issues.c.number)).where(db.issues.c.digest == digest)
    ).scalar_one()
    return int(found or 0)


def issue_for_slot(conn: Connection, digest: str, slot: datetime) -> IssueRow | None:
    row = conn.execute(
        select(db.issues).where(db.issues.c.digest == digest, db.issues.c.slot == slot)
    ).first()
    return IssueRow(**row._mapping) if row else None


def issue_by_number(conn: Connection, digest: str, number: int) -> IssueRow | None:
    row = conn.execute(
        select(db.issues).where(db.issues.c.digest == digest, db.issues.c.number == number)
    ).first()
    return IssueRow(**row._mapping) if row else None


def issue_row(conn: Connection, issue_id: int) -> IssueRow:
    row = conn.execute(select(db.issues).where(db.issues.c.id == issue_id)).one()
    return IssueRow(**row._mapping)


def save_issue(
    conn: Connection,
    issue: Issue,
    topic_id: dict[str, int],
    now: datetime,
    slot: datetime | None = None,
    approval: str = APPROVAL_NONE,
) -> Issue:
    """Store a planned issue. With a ``slot``, a second issue for the same (digest, slot) is
    refused by the unique constraint (IntegrityError), whoever tries."""
    _check_approval(approval)
    issue_id = conn.execute(
        insert(db.issues)
        .values(
            digest=issue.digest,
            number=issue.number,
            status=ISSUE_PLANNED,
            cutoff=issue.cutoff,
            created_at=now,
            slot=slot,
            approval=approval,
        )
        .returning(db.issues.c.id)
    ).scalar_one()
    rows = [
        {"issue_id": issue_id, "topic_id": topic_id[s.topic.slug], "post_id": p.id, "position": i}
        for s in issue.sections
        for i, p in enumerate(s.posts)
    ]
    if rows:
        conn.execute(insert(db.issue_posts), rows)
    conn.execute(
        insert(db.issue_topics),
        [
            {"issue_id": issue_id, "topic_id": topic_id[s.topic.slug], "more": s.more}
            for s in issue.sections
        ],
    )
    return Issue(issue.digest, issue.number, issue.sections, issue.cutoff, issue_id, now)


def load_issue(conn: Connection, issue_id: int, topics: Sequence[Topic]) -> Issue:
    """The issue as it will be sent, sections in the order of ``topics`` (the digest's order),
    posts in each section by their ``position`` (editors may reorder them). Posts an editor
    excluded are left out; a topic whose posts are all excluded has no section."""
    head = issue_row(conn, issue_id)
    query = (
        select(db.posts, db.topics.c.slug.label("section"), db.issue_posts.c.position)
        .join(db.issue_posts, db.issue_posts.c.post_id == db.posts.c.id)
        .join(db.topics, db.topics.c.id == db.issue_posts.c.topic_id)
        .where(db.issue_posts.c.issue_id == issue_id, db.issue_posts.c.excluded.is_(False))
        .order_by(db.issue_posts.c.topic_id, db.issue_posts.c.position, db.posts.c.id)
    )
    rows = list(conn.execute(query))
    post_topics: dict[int, list[str]] = {}
    for row in rows:
        post_topics.setdefault(row.id, []).append(row.section)
    by_section: dict[str, list[StoredPost]] = {}
    for row in rows:
        by_section.setdefault(row.section, []).append(_stored(row, tuple(post_topics[row.id])))
    more = dict(
        conn.execute(
            select(db.topics.c.slug, db.issue_topics.c.more)
            .join(db.topics, db.topics.c.id == db.issue_topics.c.topic_id)
            .where(db.issue_topics.c.issue_id == issue_id)
        ).all()
    )
    sections = tuple(
        IssueSection(topic, tuple(by_section[topic.slug]), more.get(topic.slug, 0))
        for topic in topics
        if topic.slug in by_section
    )
    return Issue(head.digest, head.number, sections, head.cutoff, head.id, head.created_at)


def set_issue_status(conn: Connection, issue_id: int, status: str, now: datetime) -> None:
    values: dict[str, object] = {"status": status}
    if status == ISSUE_SENT:
        values["sent_at"] = now
    conn.execute(update(db.issues).where(db.issues.c.id == issue_id).values(**values))


def unfinished_issue(conn: Connection, digest: str) -> IssueRow | None:
    """The oldest issue not sent yet (planned, or sending). Skipped issues are finished."""
    row = conn.execute(
        select(db.issues)
        .where(
            db.issues.c.digest == digest,
            db.issues.c.status.not_in((ISSUE_SENT, ISSUE_SKIPPED)),
        )
        .order_by(db.issues.c.number)
    ).first()
    return IssueRow(**row._mapping) if row else None


def attach_slot(conn: Connection, issue_id: int, slot: datetime) -> bool:
    """Give a hand-made issue the slot the scheduler takes it for, so a rerun of that slot
    finds it instead of planning another. False when it already has a slot."""
    changed = conn.execute(
        update(db.issues)
        .where(db.issues.c.id == issue_id, db.issues.c.slot.is_(None))
        .values(slot=slot)
    ).rowcount
    return bool(changed)


def _check_approval(approval: str) -> None:
    if approval not in APPROVALS:
        raise ApprovalError(
            f"unknown approval {approval!r} (expected one of: {', '.join(APPROVALS)})",
            where="approval",
        )


def set_approval(
    conn: Connection,
    issue_id: int,
    approval: str,
    by: str | None,
    now: datetime,
    note: str | None = None,
) -> None:
    """Record an editor's (or the scheduler's) decision on a planned issue.

    Only a planned issue can change: once sending has begun the decision was acted on, and a
    skipped issue's posts may already be in a newer issue. ``skipped`` also finishes the issue
    (status ``skipped``), which frees its posts for the next issue. The update is conditional
    on the status, so a decision racing a send or a skip fails loudly instead of being lost.
    """
    _check_approval(approval)
    values: dict[str, object] = {
        "approval": approval,
        "approval_by": by,
        "approval_at": now,
        "approval_note": note,
    }
    if approval == APPROVAL_SKIPPED:
        values["status"] = ISSUE_SKIPPED
    changed = conn.execute(
        update(db.issues)
        .where(db.issues.c.id == issue_id, db.issues.c.status == ISSUE_PLANNED)
        .values(**values)
    ).rowcount
    if not changed:
        row = conn.execute(
            select(db.issues.c.number, db.issues.c.status).where(db.issues.c.id == issue_id)
        ).first()
        if row is None:
            raise ApprovalError(f"no issue with id {issue_id}", where="approval")
        raise ApprovalError(
            f"issue {row.number} is {row.status}: only a planned issue's approval can change",
            where="approval",
        )


@dataclass(frozen=True)
class ScheduleLogRow:
    id: int
    digest: str
    slot: datetime | None
    kind: str
    """ran, missed, skipped, notified, nothing, held, waiting, failed …"""
    detail: str
    at: datetime


def log_schedule(
    conn: Connection, digest: str, slot: datetime | None, kind: str, detail: str, at: datetime
) -> None:
    conn.execute(
        insert(db.schedule_log).values(digest=digest, slot=slot, kind=kind, detail=detail, at=at)
    )


def schedule_log(conn: Connection, digest: str, limit: int = 20) -> list[ScheduleLogRow]:
    """The newest entries first."""
    rows = conn.execute(
        select(db.schedule_log)
        .where(db.schedule_log.c.digest == digest)
        .order_by(db.schedule_log.c.at.desc(), db.schedule_log.c.id.desc())
        .limit(limit)
    )
    return [ScheduleLogRow(**row._mapping) for row in rows]
