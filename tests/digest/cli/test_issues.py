"""``digest send`` on the example site: what it costs, beside what it prints."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from digest.app import wiring
from digest.app.wiring import Project
from digest.cli import app
from digest.render import render_issue


def run(project: Project, *args: str) -> tuple[int, str]:
    result = CliRunner(
        env={"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
    ).invoke(app, [*args, "--config", str(project.config.path)], catch_exceptions=False)
    return result.exit_code, " ".join(result.stdout.split())


def test_send_renders_the_issue_once(
    example_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering is the expensive step: sending and then showing what was sent (the plan's
    tables with each segment's size) use the one rendering of the issue."""
    rendered: list[int] = []
    real = render_issue

    def counting(*args: Any, **kwargs: Any) -> Any:
        rendered.append(args[0].number)
        return real(*args, **kwargs)

    monkeypatch.setattr(wiring, "render_issue", counting)
    subscribers = example_project.config.base_dir / "subscribers.csv"
    assert run(example_project, "subscribers", "import", str(subscribers))[0] == 0
    assert run(example_project, "gather")[0] == 0
    code, out = run(example_project, "send")
    assert code == 0 and "Emails submitted: 29" in out and "segments" in out
    assert rendered == [1]
