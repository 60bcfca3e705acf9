"""gather against real files and an HTTP boundary: failures by name, dedupe across sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import select

from digest import db
from digest.app import gathering
from digest.app.wiring import Project
from digest.config import load_config
from digest.gather.fetch import FetchLimits, SourceFetcher
from digest.models import Validators

FEEDS = Path(__file__).parents[2] / "data" / "sources"
NOW = datetime(2026, 11, 20, tzinfo=UTC)

CONFIG = f"""
[site]
name = "Fixture"
url = "https://blog.fixture.test"
public_url = "http://localhost:8000"
postal_address = "1 Test Road"

[[topics]]
slug = "infra"
name = "Infrastructure"
sources = [{{ name = "infra feed", url = "{FEEDS / "rss_media.xml"}" }},
           {{ name = "gone feed", url = "{FEEDS / "missing.xml"}" }}]

[[topics]]
slug = "data"
name = "Data"
sources = [{{ name = "text file", url = "{FEEDS / "not_a_feed.txt"}" }},
           {{ name = "data feed", url = "{FEEDS / "data_shared.xml"}" }}]

[[digests]]
slug = "weekly"
name = "Weekly"

[sending]
from = "digest@fixture.example"
"""


def test_broken_sources_are_reported_by_name_and_the_rest_gathered(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    path.write_text(CONFIG, encoding="utf-8")
    project = Project.open(load_config(path, {}), clock=lambda: NOW)
    report = gathering.gather_sources(project)
    failed = {s.job.name: s.error for s in report.failed}
    assert set(failed) == {"gone feed", "text file"}
    assert "no such file" in str(failed["gone feed"]) and "not an RSS or Atom feed" in str(
        failed["text file"]
    )
    assert report.new == 3  # pools (in both topics), draining (by URL), enclosure

    with project.engine.connect() as conn:
        rows = conn.execute(
            select(db.posts.c.uid, db.topics.c.slug)
            .join(db.post_topics, db.post_topics.c.post_id == db.posts.c.id)
            .join(db.topics, db.topics.c.id == db.post_topics.c.topic_id)
        ).all()
    topics_of: dict[str, set[str]] = {}
    for uid, slug in rows:
        topics_of.setdefault(uid, set()).add(slug)
    assert topics_of["fixture-post-1"] == {"infra", "data"}
    assert topics_of["https://blog.fixture.test/2026/11/draining/"] == {"infra", "data"}

    again = gathering.gather_sources(project)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 3)


def test_http_conditional_get_and_retry_on_5xx() -> None:
    body = (FEEDS / "atom_thumbnail.atom").read_bytes()
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"})
        if request.headers.get("If-None-Match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, content=body, headers={"ETag": '"v1"'})

    sleeps: list[float] = []
    fetcher = SourceFetcher(
        httpx.Client(transport=httpx.MockTransport(server)), FetchLimits(), sleep=sleeps.append
    )
    first = fetcher.fetch("https://feeds.test/a.atom", Validators())
    assert first.body == body and first.validators.etag == '"v1"' and sleeps == [0.0]
    second = fetcher.fetch("https://feeds.test/a.atom", first.validators)
    assert second.not_modified and second.body == b""
    assert seen[-1].headers["User-Agent"].startswith("digest-generator")


def test_an_oversized_body_is_refused() -> None:
    fetcher = SourceFetcher(
        httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"x" * 2000))
        ),
        FetchLimits(max_bytes=1000),
    )
    import pytest

    from digest.errors import SourceError

    with pytest.raises(SourceError, match="over the limit"):
        fetcher.fetch("https://feeds.test/big", Validators())
