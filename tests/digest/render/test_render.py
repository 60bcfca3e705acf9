"""Rendering: the once-compiled, assembled variants against full compiles, and hostile text."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import combinations

import pytest

from digest.models import HeroImage, Issue, IssueSection, Post, StoredPost, Topic
from digest.personalize import compile_template, token_values, unfilled_tokens
from digest.render import EmailContext, RenderedIssue, render_html_document, render_issue
from digest.render.assemble import strip_markers
from digest.render.layout import intro_text, preheader_text, segment_sections

NOW = datetime(2026, 11, 23, 7, tzinfo=UTC)
TOPICS = [
    Topic("backend", "Backend & Infrastructure"),
    Topic("ai-ml", "AI & ML"),
    Topic("frontend", "Frontend"),
]
HOSTILE = "Quotes \" and ' <script>alert(1)</script> {{ 7*7 }} %%unsubscribe_url%%"


def stored(post_id: int, topics: tuple[str, ...], title: str, image: bool = True) -> StoredPost:
    return StoredPost(
        post_id,
        Post(
            uid=f"u{post_id}",
            url=f"https://blog.test/{post_id}/",
            title=title,
            excerpt=f"Excerpt of {title}",
            published_at=datetime(2026, 11, 10 + post_id, 9, tzinfo=UTC),
            topics=topics,
            author="Ann Author" if post_id % 2 else None,
            image=HeroImage(f"https://img.test/{post_id}.png", f"Alt {title}", 1200, 600)
            if image
            else None,
            reading_minutes=post_id,
        ),
        NOW,
    )


POSTS = {
    1: stored(1, ("backend",), "Pools"),
    2: stored(2, ("backend", "ai-ml"), "Feature stores"),
    3: stored(3, ("ai-ml",), HOSTILE),
    4: stored(4, ("frontend",), "No image here", image=False),
}
ISSUE = Issue(
    "weekly",
    7,
    (
        IssueSection(TOPICS[0], (POSTS[2], POSTS[1])),
        IssueSection(TOPICS[1], (POSTS[3], POSTS[2])),
        IssueSection(TOPICS[2], (POSTS[4],)),
    ),
    cutoff=NOW,
    id=1,
    created_at=NOW,
)
CTX = EmailContext(
    "Fixture Blog", "https://blog.test", "1 Test Road", "The Fixture Weekly", "Europe/Berlin"
)
ALL_KEYS = [frozenset(c) for n in range(1, 4) for c in combinations([t.slug for t in TOPICS], n)]


@pytest.fixture(scope="module")
def rendered() -> RenderedIssue:
    return render_issue(ISSUE, CTX)


STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)
RULE = re.compile(r"[^{}]+\{[^{}]*\}")


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


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: "+".join(sorted(k)))
def test_assembled_variant_equals_a_full_compile(
    rendered: RenderedIssue, key: frozenset[str]
) -> None:
    sections = segment_sections(ISSUE, key, CTX.zone)
    full = render_html_document(
        rendered.env, CTX, ISSUE, sections, intro_text(sections), preheader_text(sections)
    )
    head, body, rules = split(rendered.variant(key).html)
    full_head, full_body, full_rules = split(strip_markers(full))
    assert body == full_body
    assert head == full_head
    assert rules >= full_rules


def test_a_post_in_two_of_my_topics_shows_once(rendered: RenderedIssue) -> None:
    both = rendered.variant(frozenset({"backend", "ai-ml"}))
    assert both.html.count("https://blog.test/2/") == rendered.variant(
        frozenset({"ai-ml"})
    ).html.count("https://blog.test/2/")
    assert both.text.count("Read more: https://blog.test/2/") == 1


def test_cards_are_only_of_the_segments_topics(rendered: RenderedIssue) -> None:
    variant = rendered.variant(frozenset({"frontend"}))
    assert "No image here" in variant.html and "Pools" not in variant.html
    assert variant.subject == "1 new post in Frontend"
    assert "Backend" not in variant.text


def test_hostile_text_renders_inert_in_html_text_and_subject(rendered: RenderedIssue) -> None:
    variant = rendered.variant(frozenset({"ai-ml"}))
    assert "<script>alert(1)" not in variant.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in variant.html
    assert "{{ 7*7 }}" in variant.text and "49" not in variant.text
    values = token_values(
        {
            "first_name": "Ann",
            "email": "a@x.test",
            "unsubscribe_url": "https://u.test/REAL",
            "preferences_url": "https://p.test/REAL",
        }
    )
    for part in (variant.html, variant.text, variant.subject):
        filled = compile_template(part).fill(values)
        assert unfilled_tokens(filled) == []
        # The title's fake token was neutralized, so the real URL appears only where we put it.
        assert filled.count("https://u.test/REAL") == (0 if part is variant.subject else 1)
