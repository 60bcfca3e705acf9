"""gather over real HTTP against a local server that misbehaves like real feed servers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DatabaseError
from typer.testing import CliRunner

from digest import db
from digest.app import gathering
from digest.app.wiring import Project
from digest.cli import app
from digest.config import load_config
from tests.feedserver import FeedServer, running

NOW = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    with running() as feed_server:
        yield feed_server


def write_config(folder: Path, base: str) -> Path:
    default_image = folder / "default.png"
    default_image.write_bytes(b"png")
    path = folder / "digest.toml"
    path.write_text(
        f"""
[site]
name = "HTTP"
url = "https://http.example"
public_url = "http://localhost:8000"
postal_address = "1 Road"

[[topics]]
slug = "infra"
name = "Backend"
sources = [
  {{ name = "good", url = "{base}/feed.xml" }},
  {{ name = "flaky", url = "{base}/flaky.xml" }},
  {{ name = "slow", url = "{base}/slow.xml" }},
  {{ name = "huge", url = "{base}/huge.xml" }},
  {{ name = "loop", url = "{base}/loop" }},
  {{ name = "error", url = "{base}/error.xml" }},
  {{ name = "html", url = "{base}/page.html" }},
  {{ name = "bomb", url = "{base}/bomb.xml" }},
]

[[topics]]
slug = "plain"
name = "Plain"
default_image = "default.png"
sources = [{{ name = "no images", url = "{base}/no-images.xml" }}]

[[sources]]
name = "wordpress"
url = "{base}/wp-json/wp/v2/posts?categories=7"

[[digests]]
slug = "weekly"
name = "Weekly"

[sending]
from = "digest@http.example"

[gather]
timeout_seconds = 1
retries = 1
max_bytes = 1000000
max_redirects = 3
og_image = true
allow_private = ["127.0.0.1"]
""",
        encoding="utf-8",
    )
    return path


def test_each_misbehaviour_is_reported_by_name_and_the_rest_gathered(
    server: FeedServer, tmp_path: Path
) -> None:
    project = Project.open(load_config(write_config(tmp_path, server.base), {}), clock=lambda: NOW)
    sleeps: list[float] = []
    project.sleep = sleeps.append
    report = gathering.gather_sources(project)
    # "error" and "flaky" are retried at once, as their Retry-After: 0 asks; "slow" timed out
    # and waits 2**0 s before its one retry.
    assert sorted(sleeps) == [0.0, 0.0, 1.0]
    errors = {s.job.name: s.error or "" for s in report.failed}
    assert set(errors) == {"slow", "huge", "loop", "error", "html", "bomb"}
    assert "timed out" in errors["slow"] or "not complete" in errors["slow"]
    assert "over the limit of 1000000" in errors["huge"]
    assert "more than 3 redirects" in errors["loop"]
    assert errors["error"] == "HTTP 500 Internal Server Error (after 2 tries)"
    assert "not an RSS or Atom feed" in errors["html"]
    assert errors["bomb"].startswith("refused: the document declares its own XML entities")

    ok = {s.job.name: s for s in report.sources if s.ok}
    assert ok["good"].posts == 3 and ok["flaky"].posts == 3
    assert ok["wordpress"].kind == "wordpress" and ok["wordpress"].posts == 4  # two pages
    assert server.hits["/flaky.xml"] == 2 and server.hits["/error.xml"] == 2

    with project.engine.connect() as conn:
        images = dict(conn.execute(select(db.posts.c.uid, db.posts.c.image_url)).all())
        alts = dict(conn.execute(select(db.posts.c.uid, db.posts.c.image_alt)).all())
    assert images["article-1"] == f"{server.base}/img/og-card.png"
    assert alts["article-1"] == "The blog's share card"
    assert images["article-2"] == (tmp_path / "default.png").resolve().as_uri()


def test_an_unchanged_feed_costs_a_304_and_no_parse(server: FeedServer, tmp_path: Path) -> None:
    project = Project.open(load_config(write_config(tmp_path, server.base), {}), clock=lambda: NOW)
    first_sleeps: list[float] = []
    project.sleep = first_sleeps.append
    gathering.gather_sources(project)
    before = len(server.requests)
    second_sleeps: list[float] = []
    project.sleep = second_sleeps.append
    second = gathering.gather_sources(project)
    # Retry-After: 0 from "error" (and from "flaky", the first time this server sees it);
    # 2**0 s before "slow" is tried again after timing out.
    assert sorted(first_sleeps) in ([0.0, 1.0], [0.0, 0.0, 1.0])
    assert sorted(second_sleeps) == [0.0, 1.0]
    good = next(s for s in second.sources if s.job.name == "good")
    assert good.ok and good.not_modified and good.posts == 0
    sent = [headers for path, headers in server.requests[before:] if path == "/feed.xml"]
    assert sent and sent[-1].get("If-None-Match", "").startswith('"')
    assert all(h.get("User-Agent", "").startswith("digest-generator/") for h in sent)


def test_cli_gather_prints_the_failures_and_exits_non_zero(
    server: FeedServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, server.base)
    result = CliRunner().invoke(app, ["gather", "--config", str(config)])
    assert result.exit_code == 1
    for name in ("slow", "huge", "loop", "error", "html", "bomb"):
        assert f"Source '{name}' failed:" in result.output


def test_validators_are_kept_only_with_their_posts(server: FeedServer, tmp_path: Path) -> None:
    """The database fails while storing the posts (a real failure: a trigger refuses them):
    the sources' new ETags must not be kept either, or the next gather gets 304 and the posts
    that were read are never stored."""
    project = Project.open(load_config(write_config(tmp_path, server.base), {}), clock=lambda: NOW)
    project.sleep = lambda seconds: None
    with project.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER full_disk BEFORE INSERT ON posts "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    with pytest.raises(DatabaseError, match="disk is full"):
        gathering.gather_sources(project)
    with project.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER full_disk")
        assert conn.execute(select(db.source_states.c.etag)).scalars().all() == []
    again = gathering.gather_sources(project)
    good = next(s for s in again.sources if s.job.name == "good")
    assert good.ok and not good.not_modified and good.posts > 0
    with project.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.posts)).scalar_one() > 0
