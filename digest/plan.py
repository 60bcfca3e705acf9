"""plan: a digest, the stored posts and the last issue → the next issue, or nothing.

Pure: the caller loads the candidates and saves the result.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from digest.models import Issue, IssueSection, StoredPost, Topic


def plan_issue(
    *,
    digest: str,
    topics: Sequence[Topic],
    candidates: Sequence[StoredPost],
    already_sent: Collection[int],
    last_number: int,
    max_posts_per_topic: int,
    now: datetime,
) -> tuple[Issue | None, dict[str, int]]:
    """The next issue and, per topic, how many new posts did not fit (``max_posts_per_topic``).

    ``candidates`` are the posts published after the previous issue's cutoff and not after
    ``now``; a post already in an earlier issue of this digest is never new again. Sections
    follow the digest's topic order, posts newest first. ``None`` when nothing is new.
    """
    fresh = [p for p in candidates if p.id not in already_sent and p.post.published_at <= now]
    fresh.sort(key=lambda p: (p.post.published_at, p.id), reverse=True)
    sections = []
    overflow: dict[str, int] = {}
    for topic in topics:
        in_topic = [p for p in fresh if topic.slug in p.post.topics]
        if not in_topic:
            continue
        sections.append(IssueSection(topic, tuple(in_topic[:max_posts_per_topic])))
        if len(in_topic) > max_posts_per_topic:
            overflow[topic.slug] = len(in_topic) - max_posts_per_topic
    if not sections:
        return None, {}
    return Issue(digest, last_number + 1, tuple(sections), cutoff=now), overflow
