"""Reading one source of any kind into raw entries: detection, fetching, paging."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from digest.errors import SourceError
from digest.gather.entry import RawEntry
from digest.gather.feed import read_feed
from digest.gather.fetch import Fetcher
from digest.gather.jsonfeed import is_json_feed, read_json_feed
from digest.gather.markdown import folder_of, read_folder
from digest.gather.wordpress import is_wordpress_posts, page_url, read_posts, total_pages
from digest.models import Validators

Kind = Literal["feed", "jsonfeed", "wordpress", "markdown"]


@dataclass(frozen=True)
class SourceRead:
    kind: Kind
    entries: tuple[RawEntry, ...]
    validators: Validators
    not_modified: bool = False


def kind_of_body(body: bytes) -> Kind:
    """What a fetched document is: JSON Feed, WordPress posts JSON, else RSS/Atom."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head not in (b"{", b"["):
        return "feed"
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as err:  # bad bytes, bad JSON, huge ints, deep nesting
        raise SourceError(f"looks like JSON but does not parse ({err})") from None
    if is_json_feed(document):
        return "jsonfeed"
    if is_wordpress_posts(document) or document == []:
        return "wordpress"
    raise SourceError("JSON, but neither a JSON Feed nor a WordPress posts list")


def read_source(
    location: str,
    kind: str,
    fetcher: Fetcher,
    validators: Validators,
    *,
    max_pages: int,
    max_bytes: int,
    base_url: str | None = None,
) -> SourceRead:
    """Every raw entry of the source. ``kind`` "auto" detects it from the location and body."""
    is_folder = urlsplit(location).scheme == "file" and folder_of(location).is_dir()
    if kind == "markdown" or (kind == "auto" and is_folder):
        return SourceRead(
            "markdown", tuple(read_folder(location, base_url, max_bytes)), Validators()
        )
    wordpress_api = "/wp-json/" in urlsplit(location).path or "rest_route=" in location
    first_url = (
        page_url(location, 1)
        if kind == "wordpress" or (kind == "auto" and wordpress_api)
        else location
    )
    fetched = fetcher.fetch(first_url, validators)
    if fetched.not_modified:
        detected: Kind = "wordpress" if first_url != location else "feed"
        return SourceRead(detected, (), fetched.validators, not_modified=True)
    detected = kind_of_body(fetched.body) if kind == "auto" else kind  # type: ignore[assignment]
    if detected == "feed":
        content_type = _header(fetched.headers, "content-type")
        entries = read_feed(fetched.body, location, content_type)
        return SourceRead("feed", tuple(entries), fetched.validators)
    if detected == "jsonfeed":
        return SourceRead("jsonfeed", tuple(read_json_feed(fetched.body)), fetched.validators)
    if detected != "wordpress":
        raise SourceError(f"unknown source kind {kind!r}")
    entries = read_posts(fetched.body)
    if first_url != location:
        pages = min(max_pages, total_pages(_header(fetched.headers, "x-wp-totalpages")))
        for page in range(2, pages + 1):
            entries += read_posts(fetcher.fetch(page_url(location, page), Validators()).body)
    return SourceRead("wordpress", tuple(entries), fetched.validators)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None
