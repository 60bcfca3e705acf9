"""plan: a digest, the stored posts and the last issue → the next issue, or nothing.

Pure: the caller loads the candidates and saves the result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from digest.models import Issue, IssueSection, StoredPost, Topic

LATE_POST_WINDOW = timedelta(days=7)
"""How far before the last issue a post may be dated and still count as new, when it was first
seen after that issue (feeds publish late, and gather may run after the issue went out)."""


def is_new(post: StoredPost, last_cutoff: datetime | None, now: datetime) -> bool:
    """Published by now, and either published after the last issue, or first seen after it
    and dated at most :data:`LATE_POST_WINDOW` before it (not an old archive just added)."""
    published = post.post.published_at
    if published > now:
        return False
    if last_cutoff is None or published > last_cutoff:
        return True
    return post.first_seen_at > last_cutoff and published > last_cutoff - LATE_POST_WINDOW


def first_issue_window(
    candidates: Sequence[StoredPost], backfill: timedelta, now: datetime
) -> datetime | None:
    """The earliest date a post of a digest's first issue may have: ``backfill`` before the
    newest post published by now (None when there is none). A feed's whole history is not
    news: a first issue carries the last weeks of it. Counted from the newest post rather
    than from now, so a site that has been quiet for a while still starts with its latest
    posts (and the bundled example site keeps working whatever the date)."""
    published = [p.post.published_at for p in candidates if p.post.published_at <= now]
    return max(published) - backfill if published else None


def plan_issue(
    *,
    digest: str,
    topics: Sequence[Topic],
    candidates: Sequence[StoredPost],
    already_sent: Collection[int],
    last_number: int,
    last_cutoff: datetime | None,
    max_posts_per_topic: int,
    now: datetime,
    backfill: timedelta | None = None,
) -> Issue | None:
    """The next issue; each section counts the new posts that did not fit (``more``).

    A post is in it when :func:`is_new` says so and no earlier issue of this digest had it.
    Sections follow the digest's topic order, posts newest first. ``None`` when nothing is new.
    The first issue (no ``last_cutoff``) takes only the posts of :func:`first_issue_window`
    when ``backfill`` is given.
    """
    fresh = to_release(candidates, already_sent, last_cutoff, now, backfill)[::-1]
    sections = []
    for topic in topics:
        in_topic = [p for p in fresh if topic.slug in p.post.topics]
        if in_topic:
            shown = tuple(in_topic[:max_posts_per_topic])
            sections.append(IssueSection(topic, shown, more=len(in_topic) - len(shown)))
    if not sections:
        return None
    return Issue(digest, last_number + 1, tuple(sections), cutoff=now)


def to_release(
    candidates: Sequence[StoredPost],
    released: Collection[int],
    last_cutoff: datetime | None,
    now: datetime,
    backfill: timedelta | None = None,
) -> list[StoredPost]:
    """The posts that get a release now, in release order ((published_at, id), oldest
    first): new by :func:`is_new` and without one yet. The digest's first issue (no
    ``last_cutoff``) releases only the posts of :func:`first_issue_window`."""
    fresh = [p for p in candidates if p.id not in released and is_new(p, last_cutoff, now)]
    start = first_issue_window(fresh, backfill, now) if backfill and not last_cutoff else None
    if start is not None:
        fresh = [p for p in fresh if p.post.published_at >= start]
    return sorted(fresh, key=lambda p: (p.post.published_at, p.id))


def number_releases(posts: Sequence[StoredPost], latest: int) -> dict[int, int]:
    """Post id → its release, counting on from the digest's ``latest``."""
    return {p.id: latest + i for i, p in enumerate(posts, start=1)}


def issue_range(base: int, lowest_own: int | None, latest: int) -> tuple[int, int]:
    """(release_from, release_to) of a cadence's next issue: up to the digest's ``latest``
    release, from the lowest watermark of its readers who get it (``base`` for the many
    without one of their own; ``lowest_own``, if any, among the others)."""
    return (base if lowest_own is None else min(base, lowest_own)), latest


def plan_cadence_issue(
    *,
    digest: str,
    cadence: str,
    topics: Sequence[Topic],
    held: Sequence[tuple[StoredPost, int]],
    number: int,
    release_from: int,
    release_to: int,
    release_base: int,
    max_posts_per_topic: int,
    takes_default: bool,
    now: datetime,
) -> Issue | None:
    """The issue of a cadence holding ``held`` (each post with its release, those in
    (release_from, release_to]): every post in each of its topics, newest first; each
    variant caps its topics (:attr:`Issue.per_topic`), since readers owed different releases
    see different posts. None when it holds nothing."""
    inside = [(p, r) for p, r in held if release_from < r <= release_to]
    inside.sort(key=lambda pr: (pr[0].post.published_at, pr[0].id), reverse=True)
    sections = []
    for topic in topics:
        in_topic = tuple(p for p, _ in inside if topic.slug in p.post.topics)
        if in_topic:
            sections.append(IssueSection(topic, in_topic))
    if not sections:
        return None
    return Issue(
        digest,
        number,
        tuple(sections),
        cutoff=now,
        cadence=cadence,
        release_from=release_from,
        release_to=release_to,
        release_base=release_base,
        per_topic=max_posts_per_topic,
        releases={p.id: r for p, r in inside},
        takes_default=takes_default,
    )
