"""shared/corpus (DIGEST_CORPUS_DIR): real feeds through the real gather, inspect and parsers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from digest import db
from digest.app import gathering
from digest.app.gathering import inspect_source
from digest.app.wiring import Project
from digest.config import load_config
from digest.gather.dates import parse_date
from digest.gather.feed import parse_document
from digest.gather.images import MIN_HERO_WIDTH
from digest.gather.urls import canonical_url

NOW = datetime(2026, 11, 20, tzinfo=UTC)
DANGEROUS = re.compile(r"<script|<iframe|<object|<embed|javascript:|\bon[a-z]+\s*=", re.I)
MEDIA = "{http://search.yahoo.com/mrss/}"
ATOM = "{http://www.w3.org/2005/Atom}"


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(
        p
        for p in (corpus / "feeds").rglob("*")
        if p.is_file()
        and p.suffix in (".xml", ".rss", ".atom", ".json")
        and p.name != "date_vectors.json"
    )


@pytest.fixture
def gathered(corpus: Path, tmp_path: Path) -> Iterator[tuple[Project, list[Path]]]:
    files = corpus_files(corpus)
    sources = ",\n  ".join(f'{{ name = "{p.relative_to(corpus)}", url = "{p}" }}' for p in files)
    config = tmp_path / "digest.toml"
    config.write_text(
        f"""
[site]
name = "Corpus"
url = "https://corpus.example"
public_url = "http://localhost:8000"
postal_address = "Nowhere"

[[topics]]
slug = "all"
name = "All"
sources = [
  {sources}
]

[[digests]]
slug = "weekly"
name = "Weekly"

[sending]
from = "digest@corpus.example"
""",
        encoding="utf-8",
    )
    project = Project.open(load_config(config, {}), clock=lambda: NOW)
    yield project, files
    project.engine.dispose()


def test_every_corpus_feed_gathers_and_stores_only_inert_fields(
    gathered: tuple[Project, list[Path]],
) -> None:
    project, files = gathered
    report = gathering.gather_sources(project)
    assert len(report.sources) == len(files) > 60
    failed = {s.job.name: s.error for s in report.failed}
    # The ill-formed cases that carry no entries at all may fail, by name and with a reason.
    assert set(failed) <= {"feeds/feedparser/illformed/rss_empty_document.xml"}, failed
    assert report.new > 300
    with project.engine.connect() as conn:
        rows = conn.execute(select(db.posts)).all()
    fields = ("uid", "url", "title", "excerpt", "author", "image_url", "image_alt", "source")
    for row in rows:
        for name in fields:
            value = getattr(row, name) or ""
            assert not DANGEROUS.search(value), (row.source, name, value[:120])
        assert row.url.startswith(("http://", "https://", "file://")), row.url
        assert row.published_at.tzinfo is not None


def test_every_corpus_file_inspects_without_an_exception(corpus: Path) -> None:
    for path in corpus_files(corpus):
        outcome, posts = inspect_source(path.resolve().as_uri(), clock=lambda: NOW)
        assert outcome.error is None or outcome.error.strip(), path
        for post in posts:
            assert not DANGEROUS.search(post.title + post.excerpt), path


def expectations(path: Path) -> str:
    match = re.search(r"Expect:\s*(.+)", path.read_text(encoding="utf-8", errors="replace"))
    assert match, path
    return match.group(1).strip()


def test_xml_base_and_relative_uris_resolve_as_expected(corpus: Path) -> None:
    """The Expect: line of each case, checked on the document as gather parses it, served from
    the address feedparser's own test server used."""
    feeds = corpus / "feeds" / "feedparser"
    cases = sorted((feeds / "wellformed" / "base").glob("*.xml")) + sorted(
        (feeds / "wellformed" / "atom10").glob("relative_uri*.xml")
    )
    assert len(cases) >= 7
    for path in cases:
        location = f"http://127.0.0.1:8097/tests/{path.relative_to(feeds).as_posix()}"
        parsed = parse_document(path.read_bytes(), location)
        names: dict[str, Any] = {
            "bozo": parsed.bozo,
            "entries": parsed.entries,
            "feed": parsed.feed,
        }
        assert eval(expectations(path), {"__builtins__": {}}, names), path.name  # noqa: S307


def test_date_vectors_give_the_expected_utc_time(corpus: Path) -> None:
    vectors = json.loads((corpus / "feeds" / "feedparser" / "date_vectors.json").read_text())[
        "vectors"
    ]
    expected_dates = [v for v in vectors if v["expected_value"]]
    assert len(expected_dates) > 40
    for vector in vectors:
        got = parse_date(vector["input_value"])
        if vector["expected_value"]:
            assert got is not None, vector
            assert list(got.timetuple())[:6] == vector["expected_value"][:6], vector
        elif vector["input_value"] != "22013":
            # "22013" is ISO 8601's ordinal form (year 22, day 13) for the lenient ISO parser
            # that another vector ("03335") expects to succeed; every other unparseable string
            # must stay unparsed rather than become a wrong date.
            assert got is None, vector


def known_small(element: Any) -> bool:
    """An image that says it is narrower than a hero may be (a 30 px avatar, a 72 px crop)."""
    width = element.get("width")
    return width is not None and width.strip().isdigit() and int(width) < MIN_HERO_WIDTH


def declared_images(path: Path) -> set[str]:
    """Canonical links of the items that name an image explicitly, not known to be too small
    for a hero, read with ElementTree."""
    if path.suffix == ".json":
        items = json.loads(path.read_text(encoding="utf-8")).get("items", [])
        return {canonical_url(i["url"]) for i in items if i.get("image") or i.get("banner_image")}
    root = etree.parse(str(path), etree.XMLParser(recover=True, resolve_entities=False)).getroot()
    found = set()
    for item in [*root.iter("item"), *root.iter(f"{ATOM}entry")]:
        explicit = [
            *(
                m
                for m in item.iter(f"{MEDIA}content")
                if m.get("medium", "image") == "image"
                and not (m.get("type") or "image/").startswith(("video", "audio"))
            ),
            *item.iter(f"{MEDIA}thumbnail"),
            *(e for e in item.iter("enclosure") if (e.get("type") or "").startswith("image/")),
            *(
                lk
                for lk in item.iter(f"{ATOM}link")
                if lk.get("rel") == "enclosure" and (lk.get("type") or "").startswith("image/")
            ),
        ]
        explicit = [e for e in explicit if not known_small(e)]
        link = item.findtext("link") or next(
            (
                lk.get("href")
                for lk in item.iter(f"{ATOM}link")
                if lk.get("rel", "alternate") == "alternate"
            ),
            None,
        )
        if explicit and link:
            found.add(canonical_url(link.strip()))
    return found


def test_real_world_items_with_an_image_get_a_hero(corpus: Path) -> None:
    checked = 0
    for path in sorted((corpus / "feeds" / "realworld").rglob("*")):
        if path.suffix not in (".xml", ".rss", ".atom", ".json"):
            continue
        wanted = declared_images(path)
        _, posts = inspect_source(path.resolve().as_uri(), clock=lambda: NOW)
        with_hero = {p.url for p in posts if p.image is not None}
        assert wanted <= with_hero, (path.name, sorted(wanted - with_hero)[:3])
        checked += len(wanted)
    assert checked > 100


def test_wordpress_rest_sample_gives_featured_images_and_categories(corpus: Path) -> None:
    path = corpus / "feeds" / "wordpress-rest" / "posts-from-category-7.json"
    outcome, posts = inspect_source(path.resolve().as_uri(), clock=lambda: NOW)
    assert outcome.kind == "wordpress" and len(posts) == 5
    for post in posts:
        assert post.image is not None and post.image.url.startswith("https://demo.worona.org/")
        assert post.image.width is not None and post.image.width >= 600
        assert "Nature" in post.topics
