"""Feed entries → posts, against our own fixtures with their expected normalized posts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.errors import SourceError
from digest.gather.feed import parse_feed

FEEDS = Path(__file__).parents[2] / "data" / "feeds"
NOW = datetime(2026, 11, 20, tzinfo=UTC)

CASES = {
    "rss_media.xml": "https://blog.fixture.test/feed.xml",
    "atom_thumbnail.atom": "https://www.fixture.test/feed.atom",
}


def normalized(name: str, location: str) -> list[dict[str, Any]]:
    posts = parse_feed(
        (FEEDS / name).read_bytes(),
        location=location,
        source=name,
        topics=["t"],
        now=NOW,
        excerpt_words=20,
    )
    out = []
    for post in posts:
        data = dataclasses.asdict(post)
        data["published_at"] = post.published_at.isoformat()
        data["topics"] = list(post.topics)
        del data["content_hash"]
        out.append(data)
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_feed_normalizes_to_expected_posts(name: str) -> None:
    expected = json.loads((FEEDS / f"{name}.expected.json").read_text(encoding="utf-8"))
    assert normalized(name, CASES[name]) == expected


def test_excerpt_carries_no_markup_or_script() -> None:
    posts = parse_feed(
        (FEEDS / "rss_media.xml").read_bytes(),
        location=CASES["rss_media.xml"],
        source="f",
        topics=["t"],
        now=NOW,
        excerpt_words=200,
    )
    for post in posts:
        assert "<" not in post.excerpt and "alert" not in post.excerpt
        assert "javascript:" not in post.url


def test_content_hash_changes_when_the_post_changes() -> None:
    body = (FEEDS / "atom_thumbnail.atom").read_bytes()
    first = parse_feed(
        body, location="https://x.test/", source="f", topics=[], now=NOW, excerpt_words=20
    )
    edited = body.replace(b"Reserve space", b"Always reserve space")
    second = parse_feed(
        edited, location="https://x.test/", source="f", topics=[], now=NOW, excerpt_words=20
    )
    assert first[0].uid == second[0].uid
    assert first[0].content_hash != second[0].content_hash


def test_a_file_that_is_not_a_feed_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="not a feed"):
        parse_feed(
            (FEEDS / "not_a_feed.txt").read_bytes(),
            location="https://x.test/",
            source="text",
            topics=[],
            now=NOW,
            excerpt_words=20,
        )
