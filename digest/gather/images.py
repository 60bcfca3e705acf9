"""Choosing a post's hero image.

Candidates: the images the format names explicitly, as the source module ranked them (largest
media:content, media:thumbnail, image enclosures, JSON Feed image/banner_image, WordPress
featured media), then the content's images in document order. Real feeds name images no card
should show: GitHub's Atom gives every commit its author's 30×30 avatar as media:thumbnail,
Blogger a 72×72 crop of the post's first picture (often a signature), FeedBurner's ad server
an image per post. So a candidate is skipped when it is known to be small (narrower than
:data:`MIN_HERO_WIDTH`), an avatar, or served by a known ad or tracker host; of the rest, the
widest known one wins, then those of unknown size in their order.
The article page's og:image and the topic's default image come after, in :mod:`digest.gather`.
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

AD_HOST_SUFFIXES = (
    "doubleclick.net",
    "googlesyndication.com",
    "googleadservices.com",
    "adservice.google.com",
    "amazon-adsystem.com",
    "adzerk.net",
    "moatads.com",
    "pheedo.com",
    "feedsportal.com",
    "adnxs.com",
    "taboola.com",
    "outbrain.com",
)
"""Ad servers: the host itself or any host under it (``feedads.g.doubleclick.net``)."""
AD_HOST_PREFIXES = ("ad.", "ads.", "adserver.", "feedads.", "pixel.", "stats.", "track.")
AVATAR_HOSTS = frozenset(
    {
        "avatars.githubusercontent.com",
        "gravatar.com",
        "www.gravatar.com",
        "secure.gravatar.com",
        "0.gravatar.com",
        "1.gravatar.com",
        "2.gravatar.com",
    }
)
MIN_HERO_WIDTH = 300
"""Pixels: a card shows its hero 216 px wide (432 px on a sharp screen); narrower than this is
an icon, an avatar or a thumbnail, and looks blurred or lost there."""

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


def _host(url: str) -> str:
    try:
        return (urlsplit(url.strip()).hostname or "").rstrip(".")
    except ValueError:
        return ""


def is_tracking_pixel(url: str, width: int | None, height: int | None) -> bool:
    if width is not None and height is not None and width <= 2 and height <= 2:
        return True
    host = _host(url)
    return host in TRACKER_HOSTS or host.startswith(("pixel.", "stats.", "track."))


def is_ad_or_tracker(url: str) -> bool:
    host = _host(url)
    return (
        host in TRACKER_HOSTS
        or host.startswith(AD_HOST_PREFIXES)
        or any(host == s or host.endswith("." + s) for s in AD_HOST_SUFFIXES)
    )


def is_avatar(url: str) -> bool:
    host = _host(url)
    return host in AVATAR_HOSTS or host.endswith(".gravatar.com")


def why_not_hero(candidate: ImageCandidate) -> str | None:
    """Why this image should not be a card's hero, or None when it may be."""
    if candidate.width is not None and candidate.width < MIN_HERO_WIDTH:
        return f"{candidate.width} px wide"
    if is_avatar(candidate.url):
        return "an avatar"
    if is_ad_or_tracker(candidate.url) or is_tracking_pixel(
        candidate.url, candidate.width, candidate.height
    ):
        return "an ad or tracker"
    return None


def rank_candidates(candidates: Iterable[ImageCandidate]) -> list[ImageCandidate]:
    """The usable candidates, best first: widest known width, then unknown sizes, each group
    in the order given (a tie keeps the source's own ranking)."""
    usable = [c for c in candidates if why_not_hero(c) is None]
    known = sorted((c for c in usable if c.width is not None), key=lambda c: -(c.width or 0))
    return known + [c for c in usable if c.width is None]


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
    """The best usable image of the explicit candidates and the content's images (see the
    module's docstring); alt falls back to the title."""
    for candidate in rank_candidates([*candidates, *content_images(content_html)]):
        if hero := to_hero(candidate, title, absolute):
            return hero
    return None


def to_hero(candidate: ImageCandidate, title: str, absolute: UrlFilter) -> HeroImage | None:
    url = absolute(candidate.url) if candidate.url else None
    if url is None:
        return None
    alt = " ".join((candidate.alt or "").split()) or title
    return HeroImage(url, alt, candidate.width, candidate.height)
