"""Hero choice (digest/gather/images.py): real feeds from shared/corpus and our own cases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.app.gathering import inspect_source
from digest.gather.images import (
    MIN_HERO_WIDTH,
    ImageCandidate,
    is_ad_or_tracker,
    is_avatar,
    rank_candidates,
    why_not_hero,
)
from digest.models import Post

NOW = datetime(2026, 11, 20, tzinfo=UTC)
DATA = Path(__file__).parents[2] / "data" / "heroes"


def posts_of(path: Path) -> list[Post]:
    _, posts = inspect_source(path.resolve().as_uri(), clock=lambda: NOW)
    return posts


def realworld(corpus: Path, name: str) -> Path:
    return corpus / "feeds" / "realworld" / name


def test_github_commit_avatars_are_no_hero(corpus: Path) -> None:
    """GitHub's Atom names a 30×30 avatar as every commit's media:thumbnail."""
    path = realworld(corpus, "miniflux/small_atom.xml")
    assert "avatars.githubusercontent.com" in path.read_text(encoding="utf-8")
    posts = posts_of(path)
    assert len(posts) == 20
    assert [p.image for p in posts] == [None] * 20


def test_blogger_signature_thumbnail_loses_to_the_content_picture(corpus: Path) -> None:
    """Blogger's media:thumbnail is a 72×72 crop (here the author's signature); the post's
    640 px picture is the hero."""
    path = realworld(corpus, "rss2email/quiltville/feed.atom")
    text = path.read_text(encoding="utf-8")
    assert 's72-c/bonniesignature.png" height="72" width="72"' in text
    posts = posts_of(path)
    assert len(posts) == 25
    heroes = [p.image for p in posts if p.image is not None]
    assert len(heroes) >= 20
    for hero in heroes:
        assert "signature" not in hero.url
        assert hero.width is not None and hero.width >= MIN_HERO_WIDTH
    first = posts[0].image
    assert first is not None
    assert first.url.endswith("/w640-h302/20210324_132242.jpg") and first.width == 640


def test_feedburner_ad_server_images_are_no_hero(corpus: Path) -> None:
    path = realworld(corpus, "rss2email/allthingsrss/feed.atom")
    assert "feedads.g.doubleclick.net" in path.read_text(encoding="utf-8")
    posts = posts_of(path)
    assert len(posts) == 3
    assert all(p.image is None or "doubleclick" not in p.image.url for p in posts)
    assert all(p.image is None or "feedburner" not in p.image.url for p in posts)


def test_real_world_heroes_are_never_known_small_avatars_or_ads(corpus: Path) -> None:
    checked = 0
    for path in sorted((corpus / "feeds" / "realworld").rglob("*")):
        if path.suffix not in (".xml", ".rss", ".atom", ".json"):
            continue
        for post in posts_of(path):
            if post.image is not None:
                image = post.image
                candidate = ImageCandidate(image.url, image.alt, image.width, image.height)
                assert why_not_hero(candidate) is None, (path.name, image)
                checked += 1
    assert checked > 100


def heroes_of_fixture() -> dict[str, str | None]:
    posts = posts_of(DATA / "feed.rss")
    return {p.url.rstrip("/").rsplit("/", 1)[1]: p.image.url if p.image else None for p in posts}


def test_fixture_cases_get_the_expected_hero() -> None:
    got = heroes_of_fixture()
    cdn = "https://cdn.heroes.example/"
    assert got == {
        "thumbnail-and-content": cdn + "w640/quilt.jpg",
        "widest": cdn + "large.jpg",
        "ad-first": cdn + "story.jpg",
        "avatar-only": None,
        "unknown-size": cdn + "inline.jpg",
        "unknown-only": cdn + "first.jpg",
        "edge-299": None,
        "edge-300": cdn + "300.jpg",
    }


@pytest.mark.parametrize(
    ("url", "ad"),
    [
        ("http://feedads.g.doubleclick.net/~a/x/0/di", True),
        ("https://doubleclick.net/x.gif", True),
        ("https://pagead2.googlesyndication.com/a.png", True),
        ("https://ads.example.com/banner.gif", True),
        ("https://feeds.feedburner.com/~r/x/~4/y", True),
        ("https://notdoubleclick.net/photo.jpg", False),
        ("https://example.com/ads/photo.jpg", False),
        ("https://downloads.example.com/photo.jpg", False),
        ("not a url [", False),
    ],
)
def test_ad_hosts_match_whole_labels(url: str, ad: bool) -> None:
    assert is_ad_or_tracker(url) is ad


@pytest.mark.parametrize(
    ("url", "avatar"),
    [
        ("https://avatars.githubusercontent.com/u/323546?s=30&v=4", True),
        ("https://secure.gravatar.com/avatar/abc", True),
        ("https://en.gravatar.com/avatar/abc", True),
        ("https://github.com/avatars.png", False),
    ],
)
def test_avatars(url: str, avatar: bool) -> None:
    assert is_avatar(url) is avatar


def test_ranking_keeps_the_source_order_on_ties_and_puts_unknown_sizes_last() -> None:
    a = ImageCandidate("https://x.example/a.jpg", width=600)
    b = ImageCandidate("https://x.example/b.jpg", width=600)
    c = ImageCandidate("https://x.example/c.jpg")
    d = ImageCandidate("https://x.example/d.jpg", width=900)
    small = ImageCandidate("https://x.example/e.jpg", width=MIN_HERO_WIDTH - 1)
    assert rank_candidates([c, a, small, b, d]) == [d, a, b, c]
