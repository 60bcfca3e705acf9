"""The WordPress REST API (``/wp-json/wp/v2/posts?…&_embed``) → raw entries.

Featured media come from ``_embedded["wp:featuredmedia"]`` (the smallest size at least
``HERO_MIN_WIDTH`` wide, else the largest), categories and tags from ``_embedded["wp:term"]``.
Pages are followed with ``page=N`` up to a limit, as ``X-WP-TotalPages`` says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from digest.errors import SourceError
from digest.gather.dates import parse_date
from digest.gather.entry import RawEntry
from digest.gather.images import ImageCandidate, dimension

HERO_MIN_WIDTH = 600
PER_PAGE = 50


def _is_post(item: Any) -> bool:
    return (
        isinstance(item, Mapping)
        and "title" in item
        and "link" in item
        and ("guid" in item or "_embedded" in item)
    )


def is_wordpress_posts(document: Any) -> bool:
    """A posts list (``/wp/v2/posts``) or a single post (``/wp/v2/posts/60``)."""
    if isinstance(document, list):
        return bool(document) and all(_is_post(p) for p in document)
    return _is_post(document)


def page_url(location: str, page: int) -> str:
    """The API URL with ``_embed`` on, a page size, and ``page`` set."""
    parts = urlsplit(location)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("_embed", "1")
    query.setdefault("per_page", str(PER_PAGE))
    query["page"] = str(page)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def total_pages(header: str | None) -> int:
    try:
        return max(1, int(header or "1"))
    except ValueError:
        return 1


def read_posts(body: bytes) -> list[RawEntry]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as err:  # bad bytes, bad JSON, huge ints, deep nesting
        raise SourceError(f"not JSON ({err})") from None
    if isinstance(document, Mapping) and "code" in document and "message" in document:
        raise SourceError(f"WordPress error {document['code']}: {document['message']}")
    if _is_post(document):
        document = [document]
    if not isinstance(document, list):
        raise SourceError("not a WordPress posts list (expected a JSON array of posts)")
    return [_raw(post) for post in document if isinstance(post, Mapping)]


def _rendered(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("rendered") or "")
    return str(value or "")


def _raw(post: Mapping[str, Any]) -> RawEntry:
    embedded = post.get("_embedded") if isinstance(post.get("_embedded"), Mapping) else {}
    assert isinstance(embedded, Mapping)
    # date_gmt carries no offset but is UTC, which is how a date without one is read.
    published = parse_date(str(post.get("date_gmt") or ""))
    return RawEntry(
        title=_rendered(post.get("title")),
        link=str(post.get("link") or "") or None,
        guid=_rendered(post.get("guid")) or None,
        summary_html=_rendered(post.get("excerpt")),
        content_html=_rendered(post.get("content")),
        published=published or parse_date(str(post.get("date") or "")),
        author=_author(embedded),
        categories=_terms(embedded),
        images=_featured(embedded),
    )


def _author(embedded: Mapping[str, Any]) -> str | None:
    authors = embedded.get("author")
    if isinstance(authors, list) and authors and isinstance(authors[0], Mapping):
        name = authors[0].get("name")
        return str(name) if name else None
    return None


def _terms(embedded: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for group in embedded.get("wp:term") or []:
        for term in group if isinstance(group, list) else []:
            if isinstance(term, Mapping) and term.get("taxonomy") in ("category", "post_tag"):
                names.extend(str(term[k]) for k in ("name", "slug") if term.get(k))
    return tuple(dict.fromkeys(names))


def _featured(embedded: Mapping[str, Any]) -> tuple[ImageCandidate, ...]:
    media = embedded.get("wp:featuredmedia")
    if not isinstance(media, list) or not media or not isinstance(media[0], Mapping):
        return ()
    item = media[0]
    if item.get("media_type", "image") != "image" or not item.get("source_url"):
        return ()
    alt = str(item.get("alt_text") or "") or None
    details = item.get("media_details") if isinstance(item.get("media_details"), Mapping) else {}
    assert isinstance(details, Mapping)
    sizes = [
        (dimension(s.get("width")) or 0, dimension(s.get("height")), str(s["source_url"]))
        for s in (details.get("sizes") or {}).values()
        if isinstance(s, Mapping) and s.get("source_url")
    ]
    full = (
        dimension(details.get("width")) or 0,
        dimension(details.get("height")),
        str(item["source_url"]),
    )
    sizes.append(full)
    wide = sorted(s for s in sizes if s[0] >= HERO_MIN_WIDTH)
    width, height, url = wide[0] if wide else max(sizes)
    return (ImageCandidate(url, alt, width or None, height),)
