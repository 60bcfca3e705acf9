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
    fresh = [p for p in candidates if p.id not in already_sent and is_new(p, last_cutoff, now)]
    start = first_issue_window(fresh, backfill, now) if backfill and not last_cutoff else None
    if start is not None:
        fresh = [p for p in fresh if p.post.published_at >= start]
    fresh.sort(key=lambda p: (p.post.published_at, p.id), reverse=True)
    sections = []
    for topic in topics:
        in_topic = [p for p in fresh if topic.slug in p.post.topics]
        if in_topic:
            shown = tuple(in_topic[:max_posts_per_topic])
            sections.append(IssueSection(topic, shown, more=len(in_topic) - len(shown)))
    if not sections:
        return None
    return Issue(digest, last_number + 1, tuple(sections), cutoff=now)
