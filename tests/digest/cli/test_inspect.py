"""``digest inspect``: what gather would make of one source, as text or JSON, storing nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.cli import app

SOURCES = Path(__file__).parents[2] / "data" / "sources"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no ./digest.toml here: inspect works without a config
    monkeypatch.delenv("DIGEST_CONFIG", raising=False)
    return CliRunner()


def test_inspect_json_lists_normalized_posts(runner: CliRunner) -> None:
    result = runner.invoke(app, ["inspect", str(SOURCES / "wordpress_posts.json"), "--json"])
    assert result.exit_code == 0, result.output
    posts = json.loads(result.output)
    assert [p["title"] for p in posts] == [
        "Caching layers – and when to skip one",
        "Only a small featured image",
    ]
    first = posts[0]
    assert first["topics"] == ["Backend", "backend", "Caching", "caching"]
    assert first["image"] == {
        "url": "https://wp.fixture.example/uploads/caching-768x384.jpg",
        "alt": "Three stacked boxes",
        "width": 768,
        "height": 384,
    }
    assert first["published_at"] == "2026-11-10T09:30:00+00:00"
    assert not list(Path.cwd().iterdir())  # nothing stored


def test_inspect_text_shows_each_post(runner: CliRunner) -> None:
    result = runner.invoke(app, ["inspect", str(SOURCES / "markdown"), "--kind", "markdown"])
    assert result.exit_code == 0, result.output
    assert "1. Sizing connection pools & queues" in result.output
    assert "2 posts from" in result.output and "(markdown)" in result.output


@pytest.mark.parametrize(
    ("source", "reason"),
    [("not_a_feed.txt", "not an RSS or Atom feed"), ("nowhere.xml", "no such file")],
)
def test_an_unreadable_source_is_one_line_and_a_non_zero_exit(
    tmp_path: Path, source: str, reason: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digest", "inspect", str(SOURCES / source)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={**os.environ, "COLUMNS": "300", "DIGEST_CONFIG": ""},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0]
    assert "Traceback" not in result.stderr
