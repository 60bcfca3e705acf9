"""A folder of Markdown files with YAML front matter → raw entries.

    ---
    title: Sizing connection pools
    date: 2026-11-10T09:30:00+01:00
    topics: [backend]
    image: images/pools.png
    image_alt: A queue of requests waiting for a connection
    summary: Why a bigger pool made us slower.
    url: https://blog.example.com/pools/     # else base_url + the file's name
    ---
    Body in Markdown…

A file named like ``2026-11-10-sizing-pools.md`` (Jekyll's convention) gives the date and the
title when the front matter does not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import yaml
from markdown_it import MarkdownIt

from digest.errors import SourceError
from digest.gather.dates import parse_date
from digest.gather.entry import RawEntry
from digest.gather.images import ImageCandidate

_DATED_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)(.*)\Z", re.S)
MAX_FILES = 2000
_MARKDOWN = MarkdownIt("commonmark", {"html": True})
"""Inline HTML is passed through as HTML: the body only ever becomes text (the excerpt, by
:func:`digest.gather.excerpt.plain_text`, which drops tags, comments and scripts with their
content) and image candidates. With ``html`` off, markdown-it escapes it and the excerpt showed
``<span>`` and ``<!-- … -->`` literally."""


def folder_of(location: str) -> Path:
    return Path(unquote(urlsplit(location).path))


def read_folder(location: str, base_url: str | None, max_bytes: int) -> list[RawEntry]:
    folder = folder_of(location)
    if not folder.is_dir():
        raise SourceError(f"no such folder: {folder}")
    files = sorted(folder.glob("*.md"))[:MAX_FILES]
    entries = []
    for path in files:
        if path.stat().st_size > max_bytes:
            raise SourceError(f"{path.name} is over the limit of {max_bytes} bytes")
        entries.append(read_file(path, base_url))
    return entries


def read_file(path: Path, base_url: str | None) -> RawEntry:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    match = _FRONT_MATTER.match(text)
    meta: Mapping[str, Any] = {}
    body = text
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as err:
            raise SourceError(f"{path.name}: front matter is not valid YAML ({err})") from None
        if isinstance(loaded, Mapping):
            meta = loaded
        body = match.group(2)
    named = _DATED_NAME.match(path.stem)
    name_date, name_title = (named.group(1), named.group(2)) if named else (None, path.stem)
    link = str(meta.get("url") or "")
    if not link:
        link = urljoin(base_url.rstrip("/") + "/", f"{path.stem}/") if base_url else path.as_uri()
    image = str(meta.get("image") or "")
    images: tuple[ImageCandidate, ...] = ()
    if image:
        resolved = image if urlsplit(image).scheme else (path.parent / image).resolve().as_uri()
        images = (ImageCandidate(resolved, str(meta.get("image_alt") or "") or None),)
    return RawEntry(
        title=_escape(str(meta.get("title") or name_title.replace("-", " ").capitalize())),
        link=link,
        guid=str(meta.get("id") or "") or None,
        summary_html=_escape(str(meta.get("summary") or "")),
        content_html=_MARKDOWN.render(body),
        published=_date(meta.get("date")) or _date(name_date),
        author=str(meta.get("author") or "") or None,
        categories=_topics(meta),
        images=images,
        base=path.as_uri(),
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _date(value: Any) -> datetime | None:
    """YAML already turns ``2026-11-10`` into a date and full timestamps into datetimes."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return parse_date(str(value)) if value else None


def _topics(meta: Mapping[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for key in ("topics", "categories", "tags"):
        value = meta.get(key)
        if isinstance(value, str):
            found.extend(v.strip() for v in re.split(r"[;,|]", value) if v.strip())
        elif isinstance(value, list):
            found.extend(str(v).strip() for v in value if str(v).strip())
    return tuple(dict.fromkeys(found))
