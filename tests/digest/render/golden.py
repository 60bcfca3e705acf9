"""The golden issue: small, but it uses every partial and every hard case of the templates.

Three topics; a post in two topics; a card without an image; an image without dimensions; a
topic with more posts than fit; a title with quotes, markup, Jinja syntax and one of our tokens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import combinations

from digest.models import HeroImage, Issue, IssueSection, Post, StoredPost, Topic, TopicSet
from digest.render import EmailContext

NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)
HOSTILE = "Quotes \" and ' <script>alert(1)</script> {{ 7*7 }} %%unsubscribe_url%%"
TOPICS = (
    Topic("backend", "Backend & Infrastructure"),
    Topic("ai-ml", "AI & ML"),
    Topic("frontend", "Frontend"),
)


def stored(
    post_id: int,
    topics: tuple[str, ...],
    title: str,
    image: HeroImage | None,
    url: str | None = None,
) -> StoredPost:
    return StoredPost(
        post_id,
        Post(
            uid=f"golden-{post_id}",
            url=url or f"https://blog.golden.example/{post_id}/",
            title=title,
            excerpt=f"Excerpt of post {post_id}: what it says, in about twenty words, ending cut…",
            published_at=datetime(2026, 11, 10 + post_id, 9, tzinfo=UTC),
            topics=topics,
            author="Ann Author" if post_id % 2 else None,
            image=image,
            reading_minutes=post_id,
        ),
        NOW,
    )


def image(post_id: int, sized: bool = True) -> HeroImage:
    url = f"https://img.golden.example/{post_id}.png"
    return HeroImage(
        url, f"Figure for post {post_id}", 1200 if sized else None, 600 if sized else None
    )


POSTS = {
    1: stored(1, ("backend",), "Sizing connection pools", image(1)),
    2: stored(2, ("backend", "ai-ml"), "Feature stores on Postgres", image(2)),
    3: stored(3, ("ai-ml",), HOSTILE, image(3, sized=False)),
    4: stored(4, ("frontend",), "A card without an image", None),
    5: stored(5, ("frontend",), "A link that is not http", image(5), url="javascript:alert(5)"),
}

ISSUE = Issue(
    "weekly",
    7,
    (
        IssueSection(TOPICS[0], (POSTS[2], POSTS[1]), more=2),
        IssueSection(TOPICS[1], (POSTS[3], POSTS[2])),
        IssueSection(TOPICS[2], (POSTS[4], POSTS[5])),
    ),
    cutoff=NOW,
    id=1,
    created_at=NOW,
)

CTX = EmailContext(
    site_name="Golden Blog",
    site_url="https://blog.golden.example",
    postal_address="1 Golden Road · 12345 Testtown",
    digest_name="The Golden Weekly",
    timezone="Europe/Berlin",
    logo_url="https://blog.golden.example/logo.png",
    logo_dark_url="https://blog.golden.example/logo-dark.png",
    archive_url="https://digest.golden.example/archive/weekly/7/",
    topic_urls={t.slug: f"https://blog.golden.example/topics/{t.slug}/" for t in TOPICS},
)

ALL_KEYS: list[TopicSet] = [
    frozenset(c) for n in range(1, 4) for c in combinations([t.slug for t in TOPICS], n)
]


def key_name(key: TopicSet) -> str:
    return "+".join(t.slug for t in TOPICS if t.slug in key)
