"""The wheel carries the templates and the example site, and renders from outside the repo."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    return next(out.glob("*.whl"))


def test_wheel_ships_templates_and_example_site(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "digest/templates/email/digest.mjml.j2" in names
    assert "digest/templates/email/partials/card.mjml.j2" in names
    assert "digest/example_site/digest.toml" in names
    assert "digest/migrations/versions/0001_initial_schema.py" in names
    assert "subscribers/store.py" in names


def test_installed_wheel_renders_from_outside_the_repo(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site-packages"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    script = f"""
import sys
sys.path.insert(0, {str(target)!r})
import digest
from digest.render.environment import template_folder
from digest.scaffold import example_site
assert digest.__file__.startswith({str(target)!r}), digest.__file__
assert str(template_folder()).startswith({str(target)!r})
assert str(example_site()).startswith({str(target)!r})
from datetime import datetime, UTC
from digest.models import Issue, IssueSection, Post, StoredPost, Topic
from digest.render import EmailContext, render_issue
now = datetime(2026, 11, 23, tzinfo=UTC)
post = StoredPost(1, Post("u", "https://x.example/1", "Hello", "World", now, ("t",)), now)
issue = Issue("w", 1, (IssueSection(Topic("t", "Topic"), (post,)),), now, 1, now)
ctx = EmailContext("S", "https://x.example", "Addr", "W", "UTC")
variant = render_issue(issue, ctx).variant(frozenset({{"t"}}))
assert "Hello" in variant.html and variant.html.startswith("<!doctype html>")
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
