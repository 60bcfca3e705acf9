"""``digest plan`` names the topics collapsed to their link to the web-archive page: 30 topics
of 4 posts are over the size budget even at one card each (tests/data/many_topics)."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from digest.app import issues
from digest.app.previews import archive_html
from digest.app.wiring import Project
from digest.cli import app
from digest.config import load_config
from digest.render.size import HTML_BUDGET_BYTES

DATA = Path(__file__).parents[2] / "data" / "many_topics"
ENV = {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}


def run(config: Path, *args: str) -> str:
    result = CliRunner(env={**ENV, "COLUMNS": "400"}).invoke(
        app, [*args, "--config", str(config)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_plan_names_the_collapsed_topics(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(DATA, site)
    config = site / "digest.toml"
    run(config, "subscribers", "import", str(site / "subscribers.csv"))
    run(config, "gather")
    out = run(config, "plan")

    project = Project.open(load_config(config, ENV))
    planned = issues.plan(project, save=False)
    assert planned is not None
    every = frozenset(planned.issue.topic_slugs)
    variant = project.render(planned.issue).variant(every)
    collapsed = variant.collapsed
    # The last topics collapse, in the digest's order; the first keep a card.
    assert 0 < len(collapsed) < 30
    assert collapsed == tuple(f"t{i:02d}" for i in range(31 - len(collapsed), 31))

    summary = next(line for line in out.splitlines() if line.startswith("Collapsed to"))
    listed = ", ".join(f"Topic {slug[1:]}" for slug in collapsed)
    assert summary == (
        "Collapsed to their link to the web-archive page (no room for a card within "
        f"{HTML_BUDGET_BYTES:,} bytes): {listed}"
    )
    # The segments table: the reader of Topic 01 alone gets it whole, the reader of every
    # topic gets the collapsed ones as links (the cell wraps over the row's lines).
    assert "HTML sent (max)" in out and "Collapsed to a link" in out
    rows = [line.split("│") for line in out.splitlines() if " KB │" in line]
    assert [r[1].strip()[:18] for r in rows] == ["Topic 01", "Topic 01, Topic 02"]
    assert rows[0][-2].strip() == "—" and rows[1][-2].strip().startswith(
        f"Topic {collapsed[0][1:]}"
    )
    assert variant.sent_bytes <= HTML_BUDGET_BYTES
    assert rows[1][3].strip() == f"{variant.sent_bytes / 1000:.1f} KB"

    # Each collapsed topic is a "more" link to its heading on the archive page, which
    # holds every card of every topic.
    archive = archive_html(project, planned.issue)
    for slug in collapsed:
        name = f"Topic {slug[1:]}"
        link = f'href="https://news.many.example/archive/weekly/1/#topic-{slug}"'
        assert f"{link} " in variant.html
        assert f"{name}: 4 new in the web version →" in variant.html
        assert f"Post 1 of {name}:" not in variant.html
        assert f'id="topic-{slug}"' in archive
    for section in planned.issue.sections:
        for post in section.posts:
            assert post.post.title in archive
