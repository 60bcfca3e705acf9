"""Each source kind against our own fixtures: an input file and its expected normalized posts.

Inputs are served under made-up http(s) addresses by a fetcher that reads the files (the HTTP
boundary is replaced, nothing else), so relative links resolve as they would on the web.
To regenerate the expected files after a deliberate change, run
``python -m tests.digest.gather.test_sources`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from digest.errors import SourceError
from digest.gather import GatherSettings, SourceJob, collect
from digest.gather.fetch import Fetched
from digest.gather.topics import TopicMapping
from digest.models import Validators

SOURCES = Path(__file__).parents[2] / "data" / "sources"
NOW = datetime(2026, 11, 20, tzinfo=UTC)
TOPICS = [("backend", "Backend & Infrastructure"), ("ai-ml", "AI & ML"), ("data", "Data")]
BY_CATEGORY = TopicMapping.by_category(TOPICS, {"k8s": "backend", "Machine Learning": "ai-ml"})

CASES: dict[str, tuple[str, str, TopicMapping]] = {
    "rss_media.xml": (
        "https://blog.fixture.example/feed.xml",
        "auto",
        TopicMapping.one_topic("backend"),
    ),
    "atom_thumbnail.atom": (
        "https://www.fixture.example/feed.atom",
        "auto",
        TopicMapping.one_topic("data"),
    ),
    "jsonfeed_1_1.json": ("https://json.fixture.example/feed.json", "auto", BY_CATEGORY),
    "jsonfeed_1_0.json": (
        "https://json.fixture.example/old.json",
        "jsonfeed",
        TopicMapping.one_topic("data"),
    ),
    "wordpress_posts.json": (
        "https://wp.fixture.example/wp-json/wp/v2/posts?categories=7",
        "auto",
        BY_CATEGORY,
    ),
    "markdown": ("", "auto", TopicMapping.one_topic("data")),
    "categories.xml": ("https://all.fixture.example/feed", "feed", BY_CATEGORY),
}


class FilesAsUrls:
    """Answers every URL with one fixture file: the HTTP boundary, replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.urls: list[str] = []

    def fetch(self, location: str, validators: Validators) -> Fetched:
        self.urls.append(location)
        return Fetched(self.path.read_bytes(), Validators('"e1"'))


def run_case(name: str) -> tuple[Any, list[dict[str, Any]]]:
    location, kind, mapping = CASES[name]
    path = SOURCES / name
    if not location:
        location = path.resolve().as_uri()
    job = SourceJob(name, location, mapping, kind, base_url="https://md.fixture.example/notes/")
    outcome, posts, _ = collect(
        job, FilesAsUrls(path), Validators(), GatherSettings(excerpt_words=20), NOW
    )
    out = []
    for post in posts:
        data = dataclasses.asdict(post)
        data["published_at"] = post.published_at.isoformat()
        data["topics"] = list(post.topics)
        del data["content_hash"]
        out.append(json.loads(json.dumps(data).replace(SOURCES.resolve().as_uri(), "{sources}")))
    return outcome, out


def expected_path(name: str) -> Path:
    return SOURCES / f"{Path(name).stem}.expected.json"


@pytest.mark.parametrize("name", sorted(CASES))
def test_source_normalizes_to_expected_posts(name: str) -> None:
    outcome, posts = run_case(name)
    assert outcome.error is None
    assert posts == json.loads(expected_path(name).read_text(encoding="utf-8"))


def test_detected_kinds_and_unmapped_posts() -> None:
    kinds = {name: run_case(name)[0].kind for name in CASES}
    assert kinds == {
        "rss_media.xml": "feed",
        "atom_thumbnail.atom": "feed",
        "jsonfeed_1_1.json": "jsonfeed",
        "jsonfeed_1_0.json": "jsonfeed",
        "wordpress_posts.json": "wordpress",
        "markdown": "markdown",
        "categories.xml": "feed",
    }
    assert run_case("categories.xml")[0].unmapped == 1


def test_wordpress_asks_for_embedded_pages() -> None:
    fetcher = FilesAsUrls(SOURCES / "wordpress_posts.json")
    job = SourceJob("wp", CASES["wordpress_posts.json"][0], BY_CATEGORY)
    collect(job, fetcher, Validators(), GatherSettings(), NOW)
    assert fetcher.urls == [
        "https://wp.fixture.example/wp-json/wp/v2/posts?categories=7&_embed=1&per_page=50&page=1"
    ]


def test_excerpts_carry_no_markup_or_script() -> None:
    for name in CASES:
        for post in run_case(name)[1]:
            assert "<" not in post["excerpt"], (name, post["excerpt"])
            for text in (post["title"], post["excerpt"], post["author"] or ""):
                assert "<script" not in text and "alert(" not in text, (name, text)
            assert post["url"].startswith(("https://", "http://", "file://")), name


def test_a_file_that_is_not_a_feed_is_a_source_error() -> None:
    job = SourceJob("text", "https://x.example/feed", TopicMapping.one_topic("data"))
    outcome, posts, _ = collect(
        job, FilesAsUrls(SOURCES / "not_a_feed.txt"), Validators(), GatherSettings(), NOW
    )
    assert posts == [] and outcome.error is not None and "not an RSS or Atom feed" in outcome.error
    with pytest.raises(SourceError):
        raise SourceError(outcome.error)


if __name__ == "__main__":  # regenerate the expected files; review the diff before committing
    for case in sorted(CASES) if len(sys.argv) < 2 else sys.argv[1:]:
        _, found = run_case(case)
        expected_path(case).write_text(
            json.dumps(found, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print("wrote", expected_path(case))
