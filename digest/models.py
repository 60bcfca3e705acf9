"""The values that flow between the stages. Frozen: a stage returns new values, never edits."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

TopicSet = frozenset[str]
"""The slugs of the topics a group of readers gets in one issue."""


@dataclass(frozen=True)
class Owed:
    """A segment key: what a group of readers is owed by one issue. ``topics``: theirs with
    something owed in the issue; ``since``: the release after which they are owed posts, or
    None for what the issue's cadence owes its readers without a watermark of their own
    (releases after :attr:`Issue.release_base`: for most readers, the whole issue)."""

    topics: TopicSet
    since: int | None = None

    @staticmethod
    def of(key: TopicSet | Owed) -> Owed:
        return key if isinstance(key, Owed) else Owed(key)

    def __contains__(self, slug: object) -> bool:
        """Whether the topic is one they are owed (the pages list a segment's topics)."""
        return slug in self.topics


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


class FieldLimits:
    """How long a post's fields may be, in characters: the one place these bounds live.

    A feed decides what it sends, so every text a post carries is bounded before it is stored
    (gather) and again before it is shown (render, for rows stored before these bounds existed):

    - title 300 and image alt 300: a headline and its picture's description; longer is not one;
    - excerpt 2,000: the configured word count (at most 500 words) cut again by characters,
      since one "word" without spaces can be megabytes;
    - author 200: a name or a short list of names (the column holds 300);
    - URL and uid 2,000: the columns' size. A post whose link is longer is skipped (a cut link
      is a broken one), a longer image URL drops the image, a longer guid becomes its hash.
    - entries 5,000 per document: feedparser spends some 300 bytes on even an empty
      ``<item/>`` (7 bytes), so a 10 MB feed of them would cost 400 MB; a feed with more
      entries is refused before it is parsed.

    Cut text ends with "…" so a reader sees it was cut.
    """

    TITLE: Final = 300
    EXCERPT: Final = 2_000
    AUTHOR: Final = 200
    ALT: Final = 300
    URL: Final = 2_000
    UID: Final = 2_000
    ENTRIES: Final = 5_000


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a space when one is near the end, then "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    if space > limit * 3 // 4:
        head = head[:space]
    return head.rstrip() + "…"


def bounded_uid(uid: str) -> str:
    """The uid itself, or a stable stand-in when it is longer than the column."""
    if len(uid) <= FieldLimits.UID:
        return uid
    return "sha256:" + hashlib.sha256(uid.encode("utf-8", "surrogatepass")).hexdigest()


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

    def within_limits(self) -> Post:
        """Every text field cut to its bound (:class:`FieldLimits`); an image whose URL is
        over the bound is dropped. The URL itself is left alone: callers skip such posts."""
        image = self.image
        if image is not None:
            image = (
                None
                if len(image.url) > FieldLimits.URL
                else replace(image, alt=clip(image.alt, FieldLimits.ALT))
            )
        return replace(
            self,
            uid=bounded_uid(self.uid),
            title=clip(self.title, FieldLimits.TITLE),
            excerpt=clip(self.excerpt, FieldLimits.EXCERPT),
            author=clip(self.author, FieldLimits.AUTHOR) if self.author else self.author,
            image=image,
        )


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
    note: str | None = None
    """The editor's note: a short intro shown above the cards (plain text, escaped)."""
    cadence: str = ""
    """The digest's cadence it is for ('' when the digest has one schedule)."""
    release_from: int | None = None
    release_to: int | None = None
    """It holds the digest's releases in (release_from, release_to]: None before cadences."""
    release_base: int | None = None
    """Where its cadence's readers without a watermark of their own stand: they are owed the
    releases after it (release_from is lower only when a reader who switched is owed more)."""
    per_topic: int | None = None
    """The cap on a topic's cards in each variant; None: the sections were capped when planned
    (issues planned before cadences, and issues built by hand in tests)."""
    releases: Mapping[int, int] = field(default_factory=dict, compare=False, hash=False)
    """Each post's release (by post id); empty before cadences."""
    takes_default: bool = True
    """Whether readers who never chose a cadence get it (it is the default cadence's)."""

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
    collapsed: tuple[str, ...] = ()
    """Topics with no card in the email, reduced to a "more" link to the web-archive page (or
    counted in one line) to keep the HTML under the size budget."""
    sent_bytes: int = 0
    """The most bytes the HTML can have once personalized for any reader (0: not measured)."""
    since: int | None = None
    """The release after which its readers are owed posts (see :class:`Owed`)."""
