"""Every feed of shared/corpus gathers without a crash, and its excerpts are inert text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import SourceError
from digest.gather.feed import parse_feed

NOW = datetime(2026, 11, 20, tzinfo=UTC)
DANGEROUS = ("<script", "javascript:", "onclick", "onerror", "<iframe", "<object")


def test_every_corpus_feed_parses_or_fails_cleanly(corpus: Path) -> None:
    files = sorted(p for p in (corpus / "feeds").rglob("*") if p.is_file() and p.name != "README")
    assert len(files) > 50
    parsed = 0
    for path in files:
        try:
            posts = parse_feed(
                path.read_bytes(),
                location=path.resolve().as_uri(),
                source=path.name,
                topics=["t"],
                now=NOW,
                excerpt_words=60,
            )
        except SourceError:
            continue
        parsed += 1
        for post in posts:
            text = (post.title + " " + post.excerpt).lower()
            assert not any(d in text for d in DANGEROUS), (path.name, post.title)
            assert post.url.startswith(("http://", "https://", "file://")), path.name
            assert post.published_at.tzinfo is not None
            if post.image:
                assert post.image.url.startswith(("http://", "https://", "file://")), path.name
    assert parsed > 40


def test_hero_images_from_real_feeds(corpus: Path) -> None:
    feeds = corpus / "feeds" / "realworld"
    cases = {
        "rss-parser/guardian.rss": "i.guim.co.uk",
        "netnewswire/cloudblog.rss": "storage.googleapis.com",
        "netnewswire/macworld.rss": "images.",
    }
    for name, host in cases.items():
        path = feeds / name
        posts = parse_feed(
            path.read_bytes(),
            location=path.resolve().as_uri(),
            source=name,
            topics=["t"],
            now=NOW,
            excerpt_words=30,
        )
        with_images = [p for p in posts if p.image]
        assert len(with_images) >= len(posts) * 0.8, name
        assert all(host in p.image.url for p in with_images if p.image), name


@pytest.mark.parametrize("encoding_file", ["encoding_ISO-8859-1.xml", "encoding_WINDOWS-1251.xml"])
def test_legacy_encodings_decode(corpus: Path, encoding_file: str) -> None:
    path = corpus / "feeds" / "realworld" / "miniflux" / encoding_file
    posts = parse_feed(
        path.read_bytes(),
        location=path.resolve().as_uri(),
        source="x",
        topics=[],
        now=NOW,
        excerpt_words=30,
    )
    assert posts and all("\ufffd" not in p.title for p in posts)
