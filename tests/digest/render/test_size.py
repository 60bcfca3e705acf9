"""The size budget holds for the HTML part as sent: rendered, links bound, the reader's values
filled, built into the MIME message; cards trimmed, then topics collapsed to their link to the
web-archive page, then counted in one line, and the archive page holding everything."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html
from pydantic import TypeAdapter, ValidationError

from digest.config.fields import PublicUrl
from digest.errors import DigestError
from digest.models import FieldLimits, HeroImage, Issue, IssueSection, Post, StoredPost, Topic
from digest.models import Variant as VariantModel
from digest.personalize import bind_links, compile_template
from digest.render import EmailContext, RenderedIssue, render_issue
from digest.render.assemble import strip_markers
from digest.render.size import HTML_BUDGET_BYTES, html_bytes
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient, messages
from digest.send.message import Envelope
from subscribers.models import first_name_of
from subscribers.names import MAX_NAME_LENGTH, name_problem
from subscribers.tokens import TokenSigner
from tests.digest.render.test_render import split

NOW = datetime(2026, 11, 23, tzinfo=UTC)
PRINTABLE = st.characters(categories=("L", "M", "N", "P", "S", "Zs"))
ENVELOPE = Envelope("Digest", "digest@example.com", None, "Digest <d.example.com>", None)
PUBLIC_URL = "https://news.example.com"
LONGEST_ID = 2**63 - 1
LONGEST_TOKEN = TokenSigner("k").manage_token(LONGEST_ID, datetime(9999, 12, 31, tzinfo=UTC))
WORST_READER = Recipient(LONGEST_ID, "r@example.com", '"' * 200, '"' * 200, LONGEST_TOKEN)


def context(issue: Issue, public_url: str = PUBLIC_URL) -> EmailContext:
    return EmailContext(
        "Site",
        "https://blog.example.com",
        "1 Road, Town",
        "The Weekly",
        "UTC",
        archive_url=f"{public_url}/archive/{issue.digest}/{issue.number}/",
        public_url=public_url,
        topic_urls={
            s.topic.slug: f"https://blog.example.com/{s.topic.slug}/" for s in issue.sections
        },
    )


def sent_html(variant: VariantModel, public_url: str, reader: Recipient) -> str:
    """The HTML part of the message a transport sends, decoded."""
    compiled = CompiledVariant.of(variant, public_url)
    batch = OutgoingBatch(1, "weekly", 1, ENVELOPE, compiled, (reader,), public_url)
    built, failed = messages(batch, NOW)
    assert failed == {}
    message: EmailMessage = built[0][1]
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def post(post_id: int, slug: str, title: str, excerpt: str, url: str, image: str) -> StoredPost:
    return StoredPost(
        post_id,
        Post(
            uid=str(post_id),
            url=url,
            title=title,
            excerpt=excerpt,
            published_at=NOW,
            topics=(slug,),
            author="Author",
            image=HeroImage(image, title, 1200, 600) if image else None,
            reading_minutes=3,
        ),
        NOW,
    )


def bench_issue(topics: int, posts: int = 4) -> Issue:
    """bench/render_bench.py's issue: ordinary posts, four per topic."""
    sections = []
    for t in range(topics):
        topic = Topic(f"topic-{t}", f"Topic number {t}")
        cards = tuple(
            post(
                t * 100 + p,
                topic.slug,
                f"A reasonably long post title number {p} about topic {t}",
                "An excerpt of about forty words. " * 6,
                f"https://blog.example.com/{t}/{p}/",
                f"https://img.example.com/{t}-{p}.png",
            )
            for p in range(posts)
        )
        sections.append(IssueSection(topic, cards))
    return Issue("weekly", 1, tuple(sections), NOW, 1, NOW)


def text_of(element: Any) -> str:
    return "".join(element.itertext())


def every_topic(issue: Issue) -> frozenset[str]:
    return frozenset(issue.topic_slugs)


@pytest.mark.parametrize("topics", [12, 15, 30])
def test_the_largest_reader_gets_exactly_the_bound_and_it_is_within_budget(topics: int) -> None:
    """12 topics is the issue whose email went out at 102,950 bytes: the variant fitted, the
    personal values did not. The bound is exact for the longest values the rules allow."""
    assert name_problem(WORST_READER.first_name) is None
    assert len(WORST_READER.first_name) == MAX_NAME_LENGTH
    issue = bench_issue(topics)
    variant = render_issue(issue, context(issue)).variant(every_topic(issue))
    sent = html_bytes(sent_html(variant, PUBLIC_URL, WORST_READER))
    assert sent == variant.sent_bytes <= HTML_BUDGET_BYTES
    assert sent - html_bytes(variant.html) > 2_000  # what the variant alone did not count
    assert bool(variant.collapsed) is (topics > 12)


def test_what_is_budgeted_is_the_html_part_a_client_decodes() -> None:
    """The budget is on the decoded HTML part (digest/render/size.py says why): the filled
    variant is exactly what a mail client gets after undoing the transfer encoding, which on
    the wire is quoted-printable and some 7 % larger."""
    issue = bench_issue(12)
    variant = render_issue(issue, context(issue)).variant(every_topic(issue))
    filled = compile_template(bind_links(variant.html, PUBLIC_URL)).fill(WORST_READER.values())
    compiled = CompiledVariant.of(variant, PUBLIC_URL)
    batch = OutgoingBatch(1, "weekly", 1, ENVELOPE, compiled, (WORST_READER,), PUBLIC_URL)
    [(_, message)] = messages(batch, NOW)[0]
    raw = message_from_bytes(message.as_bytes(), policy=default)
    assert isinstance(raw, EmailMessage)
    part = next(p for p in raw.walk() if p.get_content_type() == "text/html")
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert part.get_payload(decode=True) == filled.encode("utf-8")
    on_the_wire = len(str(part.get_payload()).encode("ascii"))
    assert html_bytes(filled) == variant.sent_bytes < on_the_wire


def test_collapsed_topics_link_to_the_archive_page_which_holds_everything() -> None:
    issue = bench_issue(15)
    rendered = render_issue(issue, context(issue))
    key = every_topic(issue)
    variant = rendered.variant(key)
    assert variant.collapsed == ("topic-13", "topic-14")
    document = lxml_html.fromstring(variant.html)
    archive = rendered.archive()
    archive_doc = lxml_html.fromstring(archive.html)
    for slug in variant.collapsed:
        number = slug.split("-")[1]
        links = [a for a in document.iter("a") if "#topic-" + slug in a.get("href", "")]
        assert [a.get("href") for a in links] == [f"{PUBLIC_URL}/archive/weekly/1/#topic-{slug}"]
        assert text_of(links[0]) == f"Topic number {number}: 4 new in the web version →"
        assert f"about topic {number}" not in variant.html  # no card of it
        assert f"Stop getting Topic number {number}" in variant.html
        assert archive_doc.xpath(f'//*[@id="topic-{slug}"]')
        # the text part keeps the topic, with the same link
        assert f"4 more in Topic number {number}: {PUBLIC_URL}/archive/weekly/1/#topic-{slug}" in (
            variant.text
        )
    assert archive.collapsed == () and archive.trimmed == {}
    for section in issue.sections:
        for stored in section.posts:
            assert archive.html.count(stored.post.title) >= 1
    assert archive.sent_bytes > HTML_BUDGET_BYTES  # the page is not an email: no budget


def test_topics_past_even_their_links_are_counted_in_one_line() -> None:
    issue = bench_issue(40, posts=1)
    budget = 30_000
    rendered = render_issue(issue, context(issue), budget=budget)
    key = every_topic(issue)
    fit = rendered.fit(key, budget)
    assert fit.folded and all(s.collapsed for s in fit.sections + fit.folded)
    assert [s.topic.slug for s in fit.sections + fit.folded] == list(issue.topic_slugs)
    variant = rendered.variant(key)
    assert set(variant.collapsed) == set(key)
    rest = f"{len(fit.folded)} more topics in the web version →"
    document = lxml_html.fromstring(variant.html)
    [line] = [a for a in document.iter("a") if text_of(a) == rest]
    assert line.get("href") == f"{PUBLIC_URL}/archive/weekly/1/"
    for folded in fit.folded:
        assert f"Stop getting {folded.topic.name}<" not in variant.html
        assert f"Stop getting {folded.topic.name}:" in variant.text
    assert html_bytes(sent_html(variant, PUBLIC_URL, WORST_READER)) <= budget
    assert "40 new posts from Topic number 0, Topic number 1" in variant.text
    assert "and 35 other topics" in variant.text


def test_a_collapsed_variant_equals_its_full_compile() -> None:
    """Assembling from the once-compiled issue gives what compiling the fitted segment alone
    gives, collapsed topics and the counted ones included."""
    issue = bench_issue(40, posts=1)
    budget = 30_000
    rendered = render_issue(issue, context(issue), budget=budget)
    fit = rendered.fit(every_topic(issue), budget)
    assert fit.folded and any(s.collapsed for s in fit.sections)
    compiled = rendered.renderer.document(issue, fit.sections, fit.texts, len(fit.folded))
    head, body, rules = split(fit.html)
    full_head, full_body, full_rules = split(strip_markers(compiled))
    assert (head, body) == (full_head, full_body)
    assert rules >= full_rules


def test_a_frame_over_the_budget_is_a_clear_error() -> None:
    issue = bench_issue(1)
    with pytest.raises(DigestError, match=r"before any topic is in it, over the size budget"):
        render_issue(issue, context(issue), budget=5_000).variant(every_topic(issue))


# Whatever the topics, posts and reader: every HTML part sent is within the budget.

LONG = {
    "title": "&" * FieldLimits.TITLE,
    "excerpt": ('é&"<' * FieldLimits.EXCERPT)[: FieldLimits.EXCERPT],
    "url": "https://x.example/" + "a&" * ((FieldLimits.URL - 18) // 2),
}


@st.composite
def issues(draw: st.DrawFn) -> Issue:
    count = draw(st.integers(1, 30))
    names = st.text(PRINTABLE, min_size=1, max_size=100).filter(str.strip)
    sections = []
    post_id = 0
    for t in range(count):
        slug = f"t{t}"
        posts = []
        for _ in range(draw(st.integers(1, 3))):
            post_id += 1
            long = draw(st.sampled_from(["", "", "", "title", "excerpt", "url"]))
            title = LONG["title"] if long == "title" else draw(st.text(PRINTABLE, max_size=80))
            excerpt = LONG["excerpt"] if long == "excerpt" else draw(st.text(PRINTABLE))
            url = LONG["url"] if long == "url" else f"https://b.example/{post_id}"
            image = draw(st.sampled_from(["", url, "https://i.example/p.png"]))
            posts.append(post(post_id, slug, title or "t", excerpt, url, image))
        more = draw(st.integers(0, 3))
        sections.append(IssueSection(Topic(slug, draw(names)), tuple(posts), more))
    return Issue("weekly", 1, tuple(sections), NOW, 1, NOW)


@st.composite
def readers(draw: st.DrawFn) -> Recipient:
    name = draw(st.text(PRINTABLE, max_size=MAX_NAME_LENGTH).filter(lambda n: not name_problem(n)))
    subscriber = draw(st.integers(1, LONGEST_ID))
    at = draw(st.datetimes(datetime(2000, 1, 1), datetime(9999, 12, 31), timezones=st.just(UTC)))
    token = TokenSigner("k").manage_token(subscriber, at)
    return Recipient(
        subscriber, "o'brien&co@example.com", name, first_name_of(name) or "there", token
    )


def public_url_accepted(url: str) -> bool:
    """Whether the config would take ``url`` as ``[site] public_url`` (the only way one
    reaches a message): ``https://[{`` is refused there, not half-built here."""
    try:
        TypeAdapter(PublicUrl).validate_python(url)
    except ValidationError:
        return False
    return True


@given(
    issue=issues(),
    subset=st.lists(st.integers(0, 29), max_size=10),
    reader=readers(),
    public_url=st.text(PRINTABLE, max_size=200)
    .map(lambda s: "https://" + s)
    .filter(public_url_accepted),
    # Small budgets reach every step (trim, collapse, count) with few posts; the frame of the
    # email (header, intro, footer) is at most about 21 KB with the longest names.
    budget=st.sampled_from([24_000, 40_000, HTML_BUDGET_BYTES]),
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_sent_html_part_is_within_the_budget(
    issue: Issue, subset: list[int], reader: Recipient, public_url: str, budget: int
) -> None:
    rendered: RenderedIssue = render_issue(issue, context(issue, public_url), budget=budget)
    slugs = issue.topic_slugs
    some = frozenset(slugs[i % len(slugs)] for i in subset) or frozenset(slugs[:1])
    keys = {every_topic(issue), some}
    for key in keys:
        variant = rendered.variant(key)
        sent = html_bytes(sent_html(variant, public_url, reader))
        assert sent <= variant.sent_bytes <= budget
        # No topic is lost: each is in the email, whole, trimmed or collapsed, or counted.
        fit = rendered.fit(key, budget)
        shown = [s.topic.slug for s in fit.sections + fit.folded]
        assert shown == [s.topic.slug for s in rendered.sections(key)]
