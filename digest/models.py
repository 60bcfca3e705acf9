"""The values that flow between the stages. Frozen: a stage returns new values, never edits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

TopicSet = frozenset[str]
"""A segment key: the slugs of the topics a group of readers gets in one issue."""


@dataclass(frozen=True)
class Validators:
    """What a server told us last time, sent back so an unchanged feed costs a 304."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class StoreCounts:
    """What storing gathered posts did: posts added, changed, and seen before unchanged."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass(frozen=True)
class Topic:
    slug: str
    name: str


@dataclass(frozen=True)
class HeroImage:
    url: str
    alt: str
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True)
class Post:
    """A normalized article. ``uid`` is stable across fetches: the guid, else the canonical URL."""

    uid: str
    url: str
    title: str
    excerpt: str
    published_at: datetime
    topics: tuple[str, ...]
    author: str | None = None
    image: HeroImage | None = None
    reading_minutes: int = 1
    content_hash: str = ""
    source: str = ""
    dated: bool = True
    """False when the source gave no usable date and ``published_at`` is when we first saw it."""


@dataclass(frozen=True)
class StoredPost:
    """A post as the database knows it."""

    id: int
    post: Post
    first_seen_at: datetime


@dataclass(frozen=True)
class IssueSection:
    topic: Topic
    posts: tuple[StoredPost, ...]
    more: int = 0
    """New posts of this topic that did not fit (the digest's max posts per topic)."""


@dataclass(frozen=True)
class Issue:
    """One edition of a digest: a frozen list of posts per topic, in the digest's topic order."""

    digest: str
    number: int
    sections: tuple[IssueSection, ...]
    cutoff: datetime
    """Posts published at or before this instant and after the previous issue's cutoff."""
    id: int | None = None
    created_at: datetime | None = None

    @property
    def topic_slugs(self) -> tuple[str, ...]:
        return tuple(s.topic.slug for s in self.sections)

    @property
    def post_count(self) -> int:
        return len({p.id for s in self.sections for p in s.posts})

    def section(self, slug: str) -> IssueSection:
        for section in self.sections:
            if section.topic.slug == slug:
                return section
        raise KeyError(slug)


@dataclass(frozen=True)
class Variant:
    """The email of one segment, with neutral tokens where personal values go."""

    key: TopicSet
    subject: str
    html: str
    text: str
    trimmed: dict[str, int] = field(default_factory=dict)
    """Cards moved into "more" links per topic to keep the HTML under the size budget."""
