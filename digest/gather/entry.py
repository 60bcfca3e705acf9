"""What every source kind produces, and the one normalization all of them share.

A source module turns its format into :class:`RawEntry` values (still untrusted HTML, relative
URLs, dates as found); :func:`normalize` turns one into a :class:`Post`. Keeping the rules in one
place is what makes ``digest inspect`` show exactly what ``digest gather`` stores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from digest.gather.excerpt import cut_words, plain_text, reading_minutes
from digest.gather.images import ImageCandidate, pick_hero
from digest.gather.urls import absolute_url, allowed_schemes, canonical_url
from digest.models import FieldLimits, Post, clip


@dataclass(frozen=True)
class RawEntry:
    """One post as a source gives it. HTML fields are untrusted; URLs may be relative."""

    title: str
    link: str | None
    guid: str | None = None
    summary_html: str = ""
    content_html: str = ""
    published: datetime | None = None
    author: str | None = None
    categories: tuple[str, ...] = ()
    images: tuple[ImageCandidate, ...] = ()
    """Images the format names explicitly (media, enclosures, featured media), best first."""
    base: str | None = None
    """The URL relative links of this entry resolve against (xml:base), else the source's."""


@dataclass(frozen=True)
class NormalizeContext:
    location: str
    source: str
    now: datetime
    excerpt_words: int
    schemes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_source(
        cls, location: str, source: str, now: datetime, excerpt_words: int
    ) -> NormalizeContext:
        return cls(location, source, now, excerpt_words, allowed_schemes(location))


def normalize(raw: RawEntry, topics: Sequence[str], ctx: NormalizeContext) -> Post | None:
    """A clean post within :class:`~digest.models.FieldLimits`, or None when the entry has no
    title or no usable link (a link longer than the bound is not usable)."""
    base = raw.base or ctx.location
    title = clip(plain_text(raw.title), FieldLimits.TITLE)
    link = absolute_url(raw.link or "", base, ctx.schemes)
    if not title or link is None or len(link) > FieldLimits.URL:
        return None
    url = canonical_url(link)
    body_text = plain_text(raw.content_html or raw.summary_html)
    summary_text = plain_text(raw.summary_html)
    excerpt_source = summary_text if is_real_summary(summary_text, body_text) else body_text

    def absolute(value: str) -> str | None:
        return absolute_url(value, base, ctx.schemes)

    image = pick_hero(raw.images, raw.content_html or raw.summary_html, title, absolute)
    content_hash = hashlib.sha256(
        "\x1f".join([title, url, body_text, image.url if image else ""]).encode()
    ).hexdigest()
    return Post(
        uid=(raw.guid or "").strip() or url,
        url=url,
        title=title,
        excerpt=cut_words(excerpt_source, ctx.excerpt_words),
        published_at=raw.published or ctx.now,
        topics=tuple(topics),
        author=plain_text(raw.author or "") or None,
        image=image,
        reading_minutes=reading_minutes(body_text),
        content_hash=content_hash,
        source=ctx.source,
        dated=raw.published is not None,
    ).within_limits()


def is_real_summary(summary: str, body: str) -> bool:
    """A summary that is only the body's first words (many blogs do that) is not a real one."""
    if len(summary.split()) < 5:
        return False
    head = summary.rstrip(" .…[]").removesuffix("[…]").removesuffix("...").strip()
    prefix = head[: max(20, len(head) - 5)]
    return not (body and body.startswith(prefix) and len(body) > len(summary) * 2)
