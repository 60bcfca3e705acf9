"""Choosing a post's hero image from what a feed entry offers.

Preference: the largest ``media:content`` image, then ``media:thumbnail``, then an image
enclosure, then the first image in the content that is not a tracking pixel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip().removesuffix("px"))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _looks_like_image(item: Mapping[str, Any], url: str) -> bool:
    kind = str(item.get("type") or "")
    medium = str(item.get("medium") or "")
    if medium == "image" or kind.startswith("image/"):
        return True
    if medium or kind:
        return False
    return urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS)


def is_tracking_pixel(url: str, width: int | None, height: int | None) -> bool:
    if width is not None and height is not None and width <= 2 and height <= 2:
        return True
    host = urlsplit(url).hostname or ""
    return host in TRACKER_HOSTS or host.startswith(("pixel.", "stats.", "track."))


class _ImageFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v for k, v in attrs if v is not None})


def content_images(fragment: str) -> list[dict[str, str]]:
    finder = _ImageFinder()
    finder.feed(fragment)
    finder.close()
    return finder.images


def pick_hero(
    entry: Mapping[str, Any], content_html: str, title: str, absolute: UrlFilter
) -> HeroImage | None:
    alt_from_feed = _media_alt(entry)

    def make(url: str | None, width: Any, height: Any, alt: str | None = None) -> HeroImage | None:
        if not url:
            return None
        resolved = absolute(url)
        if resolved is None:
            return None
        return HeroImage(
            resolved, (alt or alt_from_feed or title).strip(), _int(width), _int(height)
        )

    media = [
        m for m in _dicts(entry.get("media_content")) if _looks_like_image(m, m.get("url", ""))
    ]
    media.sort(key=lambda m: _int(m.get("width")) or 0, reverse=True)
    for item in media:
        if hero := make(item.get("url"), item.get("width"), item.get("height")):
            return hero
    for item in _dicts(entry.get("media_thumbnail")):
        if hero := make(item.get("url"), item.get("width"), item.get("height")):
            return hero
    for item in _dicts(entry.get("enclosures")):
        url = item.get("href") or item.get("url") or ""
        if _looks_like_image(item, url) and (hero := make(url, None, None)):
            return hero
    for attrs in content_images(content_html):
        src = attrs.get("src", "")
        width, height = _int(attrs.get("width")), _int(attrs.get("height"))
        if src and not is_tracking_pixel(src, width, height):
            hero = make(src, width, height, attrs.get("alt"))
            if hero:
                return hero
    return None


def _dicts(value: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _media_alt(entry: Mapping[str, Any]) -> str | None:
    for key in ("media_description", "media_title"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
