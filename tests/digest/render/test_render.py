"""Rendering the golden issue: assembled variants against full compiles, snapshots, coverage of
every partial, hostile text, size budget, accessibility, and no network.

Regenerate the snapshots after a deliberate template change with
``python -m tests.digest.render.test_render`` and review the diff.
"""

from __future__ import annotations

import re
import socket
import sys
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader
from lxml import html as lxml_html

from digest.models import HeroImage, TopicSet
from digest.personalize import compile_template, token_values, unfilled_tokens
from digest.render import HERO_MAX_HEIGHT, RenderedIssue, hero_fit, render_issue
from digest.render.assemble import strip_markers
from digest.render.environment import make_environment, template_folder
from digest.render.size import html_bytes
from tests.digest.render.golden import ALL_KEYS, CTX, ISSUE, key_name

SNAPSHOTS = Path(__file__).parents[2] / "data" / "golden"
STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)
RULE = re.compile(r"[^{}]+\{[^{}]*\}")


class RecordingLoader(FileSystemLoader):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loaded: set[str] = set()

    def get_source(self, environment: Environment, template: str) -> Any:
        self.loaded.add(template)
        return super().get_source(environment, template)


@pytest.fixture(scope="module")
def loader() -> RecordingLoader:
    return RecordingLoader(str(template_folder()))


@pytest.fixture(scope="module")
def rendered(loader: RecordingLoader) -> RenderedIssue:
    env = make_environment()
    env.loader = loader
    return render_issue(ISSUE, CTX, env)


def split(html: str) -> tuple[str, str, set[str]]:
    """(head without styles, body, CSS rules of the head), whitespace collapsed.

    The shell's head is compiled from the whole issue, so it holds the responsive rules of
    every card layout in the issue; a segment whose cards use fewer layouts carries a few unused
    rules. So: the body and the rest of the head must be identical, and the variant's rules must
    include every rule of the full compile.
    """
    flat = re.sub(r"\s+", " ", html).strip()
    head, _, body = flat.partition("<body")
    rules = {r.strip() for css in STYLE.findall(head) for r in RULE.findall(css)}
    return re.sub(r"\s+", " ", STYLE.sub(" ", head)), body, rules


def assert_matches_full_compile(rendered: RenderedIssue, key: TopicSet) -> None:
    sections, assembled, texts = rendered.fitted(key)
    assert rendered.cut.measure(sections, texts) == html_bytes(assembled)
    full = strip_markers(rendered.renderer.document(ISSUE, sections, texts))
    head, body, rules = split(assembled)
    full_head, full_body, full_rules = split(full)
    assert body == full_body
    assert head == full_head
    assert rules >= full_rules


@pytest.mark.parametrize("key", ALL_KEYS, ids=key_name)
def test_assembled_variant_equals_a_full_compile(rendered: RenderedIssue, key: TopicSet) -> None:
    assert_matches_full_compile(rendered, key)


@pytest.mark.parametrize("key", ALL_KEYS, ids=key_name)
def test_variant_matches_its_snapshots(rendered: RenderedIssue, key: TopicSet) -> None:
    variant = rendered.variant(key)
    name = key_name(key)
    assert variant.subject == (SNAPSHOTS / f"{name}.subject.txt").read_text(encoding="utf-8")
    assert variant.text == (SNAPSHOTS / f"{name}.text.txt").read_text(encoding="utf-8")
    assert variant.html == (SNAPSHOTS / f"{name}.html").read_text(encoding="utf-8")


def test_the_golden_issue_uses_every_partial(
    rendered: RenderedIssue, loader: RecordingLoader
) -> None:
    for key in ALL_KEYS:
        rendered.variant(key)
    email_templates = {
        p.relative_to(template_folder()).as_posix()
        for p in (template_folder() / "email").rglob("*.j2")
    }
    assert email_templates - loader.loaded == set(), "partials the golden issue never renders"


def test_a_post_in_two_of_my_topics_shows_once(rendered: RenderedIssue) -> None:
    both = rendered.variant(frozenset({"backend", "ai-ml"}))
    assert both.html.count('href="https://blog.golden.example/2/"') == 3  # image, title, button
    assert both.text.count("Read more: https://blog.golden.example/2/") == 1


def test_cards_more_links_and_topic_links_follow_the_segment(rendered: RenderedIssue) -> None:
    frontend = rendered.variant(frozenset({"frontend"}))
    assert (
        "A card without an image" in frontend.html
        and "Sizing connection pools" not in frontend.html
    )
    assert frontend.subject == "2 new posts in Frontend"
    backend = rendered.variant(frozenset({"backend"}))
    assert "2 more in Backend &amp; Infrastructure →" in backend.html
    assert 'href="https://blog.golden.example/topics/backend/"' in backend.html
    assert "%%unsubscribe_topic:backend%%" in backend.html
    assert "%%unsubscribe_topic:frontend%%" not in backend.html
    assert "%%unsubscribe_topic_text:backend%%" in backend.text


def test_hostile_text_renders_inert(rendered: RenderedIssue) -> None:
    variant = rendered.variant(frozenset({"ai-ml", "frontend"}))
    assert "<script>alert(1)" not in variant.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in variant.html
    assert "javascript:" not in variant.html and "javascript:" not in variant.text
    assert "{{ 7*7 }}" in variant.text and "49" not in variant.text
    values = token_values(
        {
            "first_name": "Ann",
            "email": "a@x.example",
            "unsubscribe_url": "https://u.example/REAL",
            "preferences_url": "https://p.example/REAL",
        },
        {slug: f"https://u.example/topic/{slug}" for slug in variant.key},
    )
    for part in (variant.html, variant.text, variant.subject):
        filled = compile_template(part).fill(values)
        assert unfilled_tokens(filled) == []
    html_filled = compile_template(variant.html).fill(values)
    # The title's fake token stayed text; the real URL is only where the footer puts it.
    assert html_filled.count("https://u.example/REAL") == 1


def test_non_http_links_become_inert(rendered: RenderedIssue) -> None:
    variant = rendered.variant(frozenset({"frontend"}))
    document = lxml_html.fromstring(variant.html)
    hrefs = [a.get("href", "") for a in document.iter("a")]
    assert all(h.startswith(("https://", "http://", "%%", "#")) for h in hrefs), hrefs
    assert "#" in hrefs


def test_over_budget_variants_are_trimmed_from_the_largest_topic() -> None:
    full = render_issue(ISSUE, CTX).variant(frozenset({"backend", "ai-ml", "frontend"}))
    budget = html_bytes(full.html) - 1000
    small = render_issue(ISSUE, CTX, budget=budget)
    key = frozenset({"backend", "ai-ml", "frontend"})
    variant = small.variant(key)
    assert html_bytes(variant.html) <= budget
    assert variant.trimmed == {"backend": 1}
    assert "3 more in Backend &amp; Infrastructure →" in variant.html
    assert_matches_full_compile(small, key)


def test_rendering_fetches_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access while rendering: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    issue = render_issue(ISSUE, CTX)
    for key in ALL_KEYS:
        issue.variant(key)


def test_accessibility_of_the_html(rendered: RenderedIssue) -> None:
    variant = rendered.variant(frozenset({"backend", "ai-ml", "frontend"}))
    document = lxml_html.fromstring(variant.html)
    root = document.getroottree().getroot()
    assert root.get("lang") == "en" and root.get("dir") == "ltr"
    for img in document.iter("img"):
        assert img.get("alt"), lxml_html.tostring(img)[:120]
    for table in document.iter("table"):
        assert table.get("role") == "presentation"
    levels = [int(h.tag[1]) for h in document.iter("h1", "h2", "h3", "h4")]
    assert levels[0] == 1
    assert all(b - a <= 1 for a, b in pairwise(levels)), levels
    vague = {"read more", "click here", "here", "more", "link"}
    for link in document.iter("a"):
        text = " ".join("".join(str(t) for t in link.itertext()).split()).lower()
        label = link.get("aria-label") or ""
        image = link.find("img")
        named = text or (image is not None and image.get("alt"))
        assert named, lxml_html.tostring(link)[:120]
        if text in vague:
            assert label and label.lower() != text, lxml_html.tostring(link)[:160]


def test_heroes_have_a_width_attribute_and_no_height_attribute(rendered: RenderedIssue) -> None:
    """Outlook sizes by the width attribute; a height attribute is what Yahoo squashes with."""
    variant = rendered.variant(frozenset({"backend", "ai-ml"}))
    document = lxml_html.fromstring(variant.html)
    heroes = {
        img.get("src"): img for img in document.iter("img") if "img.golden" in img.get("src", "")
    }
    known, unknown = (
        heroes["https://img.golden.example/1.png"],
        heroes["https://img.golden.example/3.png"],
    )
    assert known.get("width") == unknown.get("width") == "216"
    assert known.get("height") is None and unknown.get("height") is None
    assert "width:100%" in known.get("style", "")  # 2:1, known: spans the column
    assert "max-height:300px" in unknown.get("style", "")  # unknown: capped, never stretched
    assert "width:auto" in unknown.get("style", "")


@pytest.mark.parametrize(
    ("width", "height", "attribute", "spans"),
    [
        (1200, 600, 216, True),  # 2:1: 432 px wide on the widest phone is 216 px tall
        (1200, 800, 216, True),  # 3:2: 288 px tall there
        (1200, 900, 216, False),  # 4:3 would be 324 px: kept in its box, attribute as wide
        (600, 1200, 150, False),  # portrait: 150 x 300 in Outlook too
        (100, 5000, 6, False),
        (None, 600, 216, False),  # unknown shape
        (0, 0, 216, False),
    ],
)
def test_hero_fit_caps_the_height(
    width: int | None, height: int | None, attribute: int, spans: bool
) -> None:
    fit = hero_fit(HeroImage("https://img.example/x.png", "x", width, height))
    assert (fit.width, fit.spans) == (attribute, spans)
    if width and height:
        assert fit.width * height / width <= HERO_MAX_HEIGHT or fit.spans


def write_snapshots() -> None:
    issue = render_issue(ISSUE, CTX)
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for key in ALL_KEYS:
        variant = issue.variant(key)
        name = key_name(key)
        (SNAPSHOTS / f"{name}.subject.txt").write_text(variant.subject, encoding="utf-8")
        (SNAPSHOTS / f"{name}.text.txt").write_text(variant.text, encoding="utf-8")
        (SNAPSHOTS / f"{name}.html").write_text(variant.html, encoding="utf-8")
        print("wrote", name, file=sys.stderr)


if __name__ == "__main__":
    write_snapshots()


def test_dark_logo_is_swapped_in_or_the_logo_gets_a_light_plate() -> None:
    issue = render_issue(ISSUE, CTX).variant(frozenset({"backend"})).html
    plain = render_issue(ISSUE, replace(CTX, logo_dark_url=None)).variant(frozenset({"backend"}))
    logos = [
        i.get("src") for i in lxml_html.fromstring(issue).iter("img") if "logo" in i.get("src", "")
    ]
    assert logos == [CTX.logo_url, CTX.logo_dark_url]
    assert ".logo .logo-dark { display: block !important;" in issue
    assert "mso-hide:all" in issue  # Outlook on Windows ignores display:none on the wrapper
    assert "logo-dark" not in plain.html
    assert ".logo img { background-color: #f8fafc !important;" in plain.html
