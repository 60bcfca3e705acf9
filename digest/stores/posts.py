"""Topics, posts and source states: what gather writes and plan reads. Issues have their own
store (:mod:`digest.stores.issues`), subscribers theirs (:mod:`subscribers.store`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from digest import db
from digest.models import HeroImage, Post, StoreCounts, StoredPost, Topic, Validators

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


def stored_post(r: AnyRow, topics: tuple[str, ...]) -> StoredPost:
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
    return [stored_post(row, tuple(slugs)) for row, slugs in rows.values()]


def any_posts(conn: Connection, topic_slugs: Sequence[str]) -> bool:
    """Whether gather ever stored a post of one of these topics."""
    query = (
        select(db.post_topics.c.post_id)
        .join(db.topics, db.topics.c.id == db.post_topics.c.topic_id)
        .where(db.topics.c.slug.in_(topic_slugs))
        .limit(1)
    )
    return conn.execute(query).first() is not None
