"""Markdown sources (digest/gather/markdown.py): inline HTML in the body is markup, and the
excerpt is text (tests/data/markdown_html)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.gather.entry import NormalizeContext, normalize
from digest.gather.markdown import read_file
from digest.models import Post

DATA = Path(__file__).parents[2] / "data" / "markdown_html"
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def post_of(name: str) -> Post:
    path = DATA / name
    raw = read_file(path, "https://md.example/notes")
    ctx = NormalizeContext.for_source(DATA.as_uri(), "markdown", NOW, excerpt_words=200)
    post = normalize(raw, ("notes",), ctx)
    assert post is not None
    return post


@pytest.mark.parametrize(
    ("name", "excerpt"),
    [
        ("2026-11-14-script.md", "Before after. The end."),
        ("2026-11-15-comments.md", "Visible text. Still visible."),
        (
            "2026-11-16-entities.md",
            "Fish & chips cost €5 — <cheap> 🐟 and &lt; stays written out. "
            "<div> in code is text the author meant to show.",
        ),
        ("2026-11-17-image.md", "The caption follows the photo."),
        ("2026-11-18-nested.md", "One two three four five six Plain seven and 8 and nine."),
    ],
)
def test_inline_html_becomes_clean_text(name: str, excerpt: str) -> None:
    post = post_of(name)
    assert post.excerpt == excerpt
    for leftover in ("<!--", "-->", "<script", "alert", "tracker", "color", "onclick", "&amp;"):
        assert leftover not in post.excerpt


def test_an_inline_img_is_a_hero_candidate() -> None:
    """The 800 px photo, not the 16 px icon."""
    image = post_of("2026-11-17-image.md").image
    assert image is not None
    photo = ("https://cdn.md.example/photo.jpg", 800, "A photo")
    assert (image.url, image.width, image.alt) == photo
