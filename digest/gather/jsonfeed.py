"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org) → raw entries."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from digest.errors import SourceError
from digest.gather.dates import parse_date
from digest.gather.entry import RawEntry
from digest.gather.images import ImageCandidate

VERSION_PREFIX = "https://jsonfeed.org/version/"


def is_json_feed(document: Any) -> bool:
    return isinstance(document, Mapping) and str(document.get("version", "")).startswith(
        VERSION_PREFIX
    )


def read_json_feed(body: bytes) -> list[RawEntry]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as err:  # bad bytes, bad JSON, huge ints, deep nesting
        raise SourceError(f"not JSON ({err})") from None
    if not is_json_feed(document):
        raise SourceError("not a JSON Feed (no https://jsonfeed.org/version/ in 'version')")
    items = document.get("items")
    if not isinstance(items, list):
        raise SourceError("JSON Feed without an 'items' list")
    feed_author = _author(document)
    return [_raw(item, feed_author) for item in items if isinstance(item, Mapping)]


def _author(holder: Mapping[str, Any]) -> str | None:
    authors = holder.get("authors")
    if isinstance(authors, list):
        names = [str(a.get("name")) for a in authors if isinstance(a, Mapping) and a.get("name")]
        if names:
            return ", ".join(names)
    author = holder.get("author")  # JSON Feed 1.0
    if isinstance(author, Mapping) and author.get("name"):
        return str(author["name"])
    return None


def _raw(item: Mapping[str, Any], feed_author: str | None) -> RawEntry:
    text = str(item.get("content_text") or "")
    content_html = str(item.get("content_html") or "") or _text_as_html(text)
    images = [
        ImageCandidate(str(item[key]))
        for key in ("image", "banner_image")
        if isinstance(item.get(key), str) and item[key].strip()
    ]
    return RawEntry(
        title=_html_safe(str(item.get("title") or "")),
        link=str(item.get("url") or item.get("external_url") or "") or None,
        guid=str(item.get("id") or "") or None,
        summary_html=_html_safe(str(item.get("summary") or "")),
        content_html=content_html,
        published=parse_date(str(item.get("date_published") or item.get("date_modified") or "")),
        author=_author(item) or feed_author,
        categories=tuple(str(t) for t in item.get("tags") or [] if isinstance(t, str)),
        images=tuple(images),
    )


def _html_safe(text: str) -> str:
    """Plain-text fields are plain text: escape them so the HTML-to-text step keeps them whole."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text_as_html(text: str) -> str:
    return "".join(f"<p>{_html_safe(p)}</p>" for p in text.split("\n\n") if p.strip())
