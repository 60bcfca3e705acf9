"""RSS 0.9x/1.0/2.0 and Atom entries → :class:`Post` values, with feedparser."""

from __future__ import annotations

import calendar
import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import feedparser

from digest.errors import SourceError
from digest.gather.excerpt import cut_words, plain_text, reading_minutes
from digest.gather.images import pick_hero
from digest.gather.urls import absolute_url, allowed_schemes, canonical_url
from digest.models import Post


def parse_feed(
    body: bytes,
    *,
    location: str,
    source: str,
    topics: Sequence[str],
    now: datetime,
    excerpt_words: int,
) -> list[Post]:
    """Every usable entry of a feed. Entries without a title or an allowed link are skipped.

    ``location`` is passed to feedparser as Content-Location so relative links resolve against
    the feed's own address, as a reader's browser would.
    """
    location = _joinable(location)
    parsed = feedparser.parse(body, response_headers={"content-location": location})
    if parsed.bozo and not parsed.entries and not parsed.feed:
        raise SourceError(f"not a feed ({_bozo_reason(parsed)})", where=source)
    if not parsed.entries and not parsed.feed.get("title") and parsed.version == "":
        raise SourceError("not an RSS or Atom feed", where=source)
    schemes = allowed_schemes(location)
    posts = []
    for entry in parsed.entries:
        post = _entry_to_post(entry, location, source, topics, now, excerpt_words, schemes)
        if post is not None:
            posts.append(post)
    return posts


def _joinable(location: str) -> str:
    """``file:///path`` as ``file://localhost/path``: feedparser's URL fixer strips the slashes
    after ``://``, which would turn the first folder of a local path into a host name."""
    if location.startswith("file:///"):
        return "file://localhost/" + location[len("file:///") :]
    return location


def _bozo_reason(parsed: Any) -> str:
    exc = parsed.get("bozo_exception")
    return str(exc).splitlines()[0] if exc else "unreadable"


def _entry_to_post(
    entry: Mapping[str, Any],
    location: str,
    source: str,
    topics: Sequence[str],
    now: datetime,
    excerpt_words: int,
    schemes: frozenset[str],
) -> Post | None:
    title = plain_text(str(entry.get("title") or ""))
    link = absolute_url(str(entry.get("link") or ""), location, schemes)
    if not title or link is None:
        return None
    url = canonical_url(link)
    guid = str(entry.get("id") or "").strip()
    content_html = _content_html(entry)
    summary_html = str(entry.get("summary") or "")
    body_text = plain_text(content_html or summary_html)
    summary_text = plain_text(summary_html)
    excerpt_source = summary_text if _is_real_summary(summary_text, body_text) else body_text
    author = plain_text(str(entry.get("author") or "")) or None

    def absolute(value: str) -> str | None:
        # Relative media and enclosure URLs are relative to the feed document, not the post.
        return absolute_url(value, location, schemes)

    image = pick_hero(entry, content_html or summary_html, title, absolute)
    content_hash = hashlib.sha256(
        "\x1f".join([title, url, body_text, image.url if image else ""]).encode()
    ).hexdigest()
    return Post(
        uid=guid or url,
        url=url,
        title=title,
        excerpt=cut_words(excerpt_source, excerpt_words),
        published_at=_published(entry) or now,
        topics=tuple(topics),
        author=author,
        image=image,
        reading_minutes=reading_minutes(body_text),
        content_hash=content_hash,
        source=source,
    )


def _content_html(entry: Mapping[str, Any]) -> str:
    contents = entry.get("content")
    if isinstance(contents, list) and contents:
        html_parts = [str(c.get("value", "")) for c in contents if "html" in str(c.get("type"))]
        return max(html_parts or [str(contents[0].get("value", ""))], key=len)
    return ""


def _is_real_summary(summary: str, body: str) -> bool:
    """A summary that is just the body's first words (many blogs do that) is not a real one."""
    if len(summary.split()) < 5:
        return False
    head = summary.rstrip(" .…[]").removesuffix("[…]").removesuffix("...").strip()
    return not (
        body and body.startswith(head[: max(20, len(head) - 5)]) and len(body) > len(summary) * 2
    )


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if isinstance(value, time.struct_time):
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None
