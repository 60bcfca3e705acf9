"""RSS 0.9x/1.0/2.0 and Atom → raw entries, with feedparser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import feedparser
from defusedxml import DefusedXmlException

from digest.errors import SourceError
from digest.gather import xmlguard
from digest.gather.dates import from_struct, parse_date
from digest.gather.entry import RawEntry
from digest.gather.images import ImageCandidate, dimension, looks_like_image

MEDIA_ALT_MAX = 300

xmlguard.install()


def joinable(location: str) -> str:
    """``file:///path`` as ``file://localhost/path``: feedparser's URL fixer strips the slashes
    after ``://``, which would turn the first folder of a local path into a host name."""
    if location.startswith("file:///"):
        return "file://localhost/" + location[len("file:///") :]
    return location


def parse_document(body: bytes, location: str, content_type: str | None = None) -> Any:
    """feedparser's result, with ``location`` as Content-Location so relative links resolve
    against the feed's own address (then ``xml:base``), as a reader's browser would. Its strict
    parser is defusedxml's (:mod:`digest.gather.xmlguard`): an entity declaration that got
    this far is refused, never expanded.

    ``content_type`` is the server's Content-Type (its charset wins over the XML declaration,
    as the HTTP rules say); a file has none and is read as XML.
    """
    headers = {
        "content-location": joinable(location),
        "content-type": content_type or "application/xml",
    }
    # feedparser's own sanitizer is skipped: every HTML field is reduced to plain text by nh3
    # (digest.gather.excerpt) and every URL passes the scheme filter, which is cheaper and
    # stricter than cleaning HTML we never keep.
    try:
        return feedparser.parse(body, response_headers=headers, sanitize_html=False)
    except DefusedXmlException as err:
        raise SourceError(f"refused: {err} (XML entities and external references)") from None


def read_feed(body: bytes, location: str, content_type: str | None = None) -> list[RawEntry]:
    if not body.strip():
        raise SourceError("empty body: the server sent no document")
    refused = xmlguard.refusal(body, content_type)
    if refused:
        raise SourceError(refused)
    parsed = parse_document(body, location, content_type)
    if not parsed.get("version") and not parsed.get("entries"):
        exc = parsed.get("bozo_exception")
        reason = str(exc).splitlines()[0] if exc else "no RSS or Atom elements"
        raise SourceError(f"not an RSS or Atom feed ({reason})")
    return [_raw(entry) for entry in parsed.get("entries") or []]


def _raw(entry: Mapping[str, Any]) -> RawEntry:
    contents = [c for c in entry.get("content") or [] if isinstance(c, Mapping)]
    html = [str(c.get("value", "")) for c in contents if "html" in str(c.get("type"))]
    plain = [str(c.get("value", "")) for c in contents if str(c.get("type")) == "text/plain"]
    content_html = max(html, key=len) if html else ""
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        if entry.get(key):
            published = from_struct(entry[key])
            if published:
                break
    if published is None:
        published = parse_date(str(entry.get("published") or entry.get("updated") or ""))
    return RawEntry(
        title=str(entry.get("title") or ""),
        link=_link(entry),
        guid=str(entry.get("id") or "") or None,
        summary_html=str(entry.get("summary") or ""),
        content_html=content_html,
        published=published,
        author=str(entry.get("author") or "") or None,
        categories=tuple(
            str(t.get("term") or t.get("label") or "").strip()
            for t in entry.get("tags") or []
            if isinstance(t, Mapping) and (t.get("term") or t.get("label"))
        ),
        images=_images(entry, media_alt=_media_alt(plain, entry)),
        base=_base(entry),
    )


def _link(entry: Mapping[str, Any]) -> str | None:
    link = entry.get("link")
    if link:
        return str(link)
    for candidate in entry.get("links") or []:
        if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
            return str(candidate["href"])
    return None


def _base(entry: Mapping[str, Any]) -> str | None:
    """The entry's own xml:base, as feedparser reports it on its title or content."""
    for key in ("title_detail", "summary_detail"):
        detail = entry.get(key)
        if isinstance(detail, Mapping) and detail.get("base"):
            return str(detail["base"])
    return None


def _media_alt(plain: list[str], entry: Mapping[str, Any]) -> str | None:
    """feedparser files ``media:description`` as a text/plain content item; next to media
    images, a short one is the image's description."""
    if not (entry.get("media_content") or entry.get("media_thumbnail")):
        return None
    for text in plain:
        text = " ".join(text.split())
        if 0 < len(text) <= MEDIA_ALT_MAX:
            return text
    return None


def _images(entry: Mapping[str, Any], media_alt: str | None) -> tuple[ImageCandidate, ...]:
    media = [
        m
        for m in entry.get("media_content") or []
        if isinstance(m, Mapping)
        and m.get("url")
        and looks_like_image(str(m["url"]), m.get("type"), m.get("medium"))
    ]
    media.sort(key=lambda m: dimension(m.get("width")) or 0, reverse=True)
    found = [
        ImageCandidate(
            str(m["url"]), media_alt, dimension(m.get("width")), dimension(m.get("height"))
        )
        for m in media
    ]
    found += [
        ImageCandidate(
            str(t["url"]), media_alt, dimension(t.get("width")), dimension(t.get("height"))
        )
        for t in entry.get("media_thumbnail") or []
        if isinstance(t, Mapping) and t.get("url")
    ]
    for enclosure in entry.get("enclosures") or []:
        href = str(enclosure.get("href") or enclosure.get("url") or "")
        if href and looks_like_image(href, enclosure.get("type")):
            found.append(ImageCandidate(href))
    return tuple(found)
