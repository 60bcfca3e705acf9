"""Choosing a post's hero image.

Order: the images the format names explicitly, as the source module ranked them (largest
media:content, media:thumbnail, image enclosures, JSON Feed image/banner_image, WordPress
featured media), then the first content image that is not a tracking pixel. The article page's
og:image and the topic's default image come after, in :mod:`digest.gather`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from digest.models import HeroImage

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif")
TRACKER_HOSTS = frozenset(
    {
        "feeds.feedburner.com",
        "feedproxy.google.com",
        "pixel.wp.com",
        "stats.wordpress.com",
        "www.google-analytics.com",
        "pixel.quantserve.com",
        "b.scorecardresearch.com",
    }
)

UrlFilter = Callable[[str], str | None]
"""Makes a URL absolute and allowed, or returns None to drop it."""


@dataclass(frozen=True)
class ImageCandidate:
    url: str
    alt: str | None = None
    width: int | None = None
    height: int | None = None


def dimension(value: Any) -> int | None:
    try:
        number = int(str(value).strip().removesuffix("px"))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def looks_like_image(url: str, mime: str | None = None, medium: str | None = None) -> bool:
    if medium == "image" or (mime or "").startswith("image/"):
        return True
    if medium or mime:
        return False
    return urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS)


def is_tracking_pixel(url: str, width: int | None, height: int | None) -> bool:
    if width is not None and height is not None and width <= 2 and height <= 2:
        return True
    host = urlsplit(url).hostname or ""
    return host in TRACKER_HOSTS or host.startswith(("pixel.", "stats.", "track."))


class _TagFinder(HTMLParser):
    def __init__(self, tag: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tag = tag
        self.found: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == self.tag:
            self.found.append({k: v for k, v in attrs if v is not None})


def tags(fragment: str, tag: str) -> list[dict[str, str]]:
    finder = _TagFinder(tag)
    finder.feed(fragment)
    finder.close()
    return finder.found


def content_images(fragment: str) -> list[ImageCandidate]:
    """``<img>`` elements of a fragment that are not tracking pixels, in document order."""
    out = []
    for attrs in tags(fragment, "img"):
        src = attrs.get("src", "").strip()
        width, height = dimension(attrs.get("width")), dimension(attrs.get("height"))
        if src and not is_tracking_pixel(src, width, height):
            out.append(ImageCandidate(src, attrs.get("alt"), width, height))
    return out


def og_image(page_html: str) -> ImageCandidate | None:
    """The ``og:image`` of an article page (with its alt, width and height when given)."""
    meta = {
        (m.get("property") or m.get("name") or "").lower(): m.get("content", "")
        for m in tags(page_html, "meta")
    }
    url = meta.get("og:image:secure_url") or meta.get("og:image") or meta.get("twitter:image")
    if not url:
        return None
    return ImageCandidate(
        url.strip(),
        meta.get("og:image:alt") or None,
        dimension(meta.get("og:image:width")),
        dimension(meta.get("og:image:height")),
    )


def pick_hero(
    candidates: Iterable[ImageCandidate], content_html: str, title: str, absolute: UrlFilter
) -> HeroImage | None:
    """The first usable candidate, then the first content image; alt falls back to the title."""
    for candidate in [*candidates, *content_images(content_html)]:
        if hero := to_hero(candidate, title, absolute):
            return hero
    return None


def to_hero(candidate: ImageCandidate, title: str, absolute: UrlFilter) -> HeroImage | None:
    url = absolute(candidate.url) if candidate.url else None
    if url is None:
        return None
    alt = " ".join((candidate.alt or "").split()) or title
    return HeroImage(url, alt, candidate.width, candidate.height)
