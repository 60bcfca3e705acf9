"""The largest HTML part actually sent: render, bind the links, fill the longest personal values
the rules allow, build the MIME message, measure its HTML part.

    python bench/size_bench.py [--public-url URL]

Cases: the bench issue of render_bench.py (12 topics x 4 posts), and issues of 1 to 30 topics
whose every field is as long as FieldLimits allows, filled with characters that grow most
when escaped. The reader: a 200-character name the name rule accepts, all double quotes
(each ``&quot;`` in HTML, six bytes), and the longest manage token (id 2**63-1). Prints the
decoded HTML part (what the budget bounds) and its size on the wire (quoted-printable or
base64, as Python's email package chose), with the wall and CPU time of the whole run.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from render_bench import make_issue

from digest.models import FieldLimits, HeroImage, Issue, IssueSection, Post, StoredPost, Topic
from digest.render import EmailContext, render_issue
from digest.render.size import HTML_BUDGET_BYTES
from digest.send.batch import CompiledVariant, OutgoingBatch, Recipient, messages
from digest.send.message import Envelope
from subscribers.names import MAX_NAME_LENGTH, name_problem

NOW = datetime(2026, 11, 23, tzinfo=UTC)
WORST_NAME = '"' * MAX_NAME_LENGTH
LONGEST_ID = 2**63 - 1


def long_text(limit: int, unit: str = "&") -> str:
    """``limit`` characters of words of ``unit``: each escapes to ``&amp;`` in HTML."""
    word = unit * 9 + " "
    return (word * (limit // len(word) + 1))[:limit]


def long_url(host: str, limit: int) -> str:
    head = f"https://{host}/"
    return head + "a&b=" * ((limit - len(head)) // 4)


def worst_issue(topics: int, posts: int) -> Issue:
    sections = []
    for t in range(topics):
        topic = Topic(f"topic-{t:02d}-" + "x" * 50, f"Topic {t} " + long_text(80))
        cards = tuple(
            StoredPost(
                t * 100 + p + 1,
                Post(
                    uid=f"{t}-{p}",
                    url=long_url(f"blog{t}-{p}.example", FieldLimits.URL),
                    title=long_text(FieldLimits.TITLE),
                    excerpt=long_text(FieldLimits.EXCERPT),
                    published_at=NOW,
                    topics=(topic.slug,),
                    author=long_text(FieldLimits.AUTHOR),
                    image=HeroImage(
                        long_url(f"img{t}-{p}.example", FieldLimits.URL),
                        long_text(FieldLimits.ALT),
                        1200,
                        600,
                    ),
                    reading_minutes=99,
                ),
                NOW,
            )
            for p in range(posts)
        )
        sections.append(IssueSection(topic, cards, more=7))
    return Issue("worst", 1, tuple(sections), NOW, 1, NOW)


def context(issue: Issue, public_url: str) -> EmailContext:
    return EmailContext(
        "Bench",
        "https://blog.example.com",
        "1 Road",
        "Bench Weekly",
        "UTC",
        archive_url=f"{public_url}/archive/{issue.digest}/{issue.number}/",
        topic_urls={s.topic.slug: "https://blog.example.com/t/" for s in issue.sections},
        public_url=public_url,
    )


def sent_html(issue: Issue, public_url: str) -> tuple[int, int, int, str]:
    """(variant bytes, sent HTML bytes decoded, on the wire, a note) for the segment of every
    topic."""
    rendered = render_issue(issue, context(issue, public_url))
    key = frozenset(issue.topic_slugs)
    variant = rendered.variant(key)
    fit = rendered.fit(key, rendered.budget)
    compiled = CompiledVariant.of(variant, public_url)
    envelope = Envelope("Bench", "digest@example.com", None, "Bench <bench.example.com>", None)
    assert name_problem(WORST_NAME) is None
    recipient = Recipient(
        LONGEST_ID,
        "reader@example.com",
        WORST_NAME,
        WORST_NAME,
        f"{LONGEST_ID}.AbCdEfG.{'s' * 43}",
    )
    batch = OutgoingBatch(1, issue.digest, 1, envelope, compiled, (recipient,), public_url)
    built, failed = messages(batch, NOW)
    assert not failed, failed
    html_part = next(p for p in built[0][1].walk() if p.get_content_type() == "text/html")
    decoded = len(html_part.get_content().encode("utf-8"))
    wire = len(str(html_part.get_payload()).encode("ascii"))
    cte = html_part["Content-Transfer-Encoding"]
    cards = sum(len(s.cards) for s in fit.sections)
    collapsed = sum(1 for s in fit.sections if s.collapsed)
    note = (
        f"bound {variant.sent_bytes:,}; {cte}; {cards} cards, {collapsed} topics collapsed, "
        f"{len(fit.folded)} counted"
    )
    return len(variant.html.encode()), decoded, wire, note


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--public-url", default="https://news.example.com")
    args = parser.parse_args()
    wall, cpu = time.perf_counter(), time.process_time()
    print(f"budget {HTML_BUDGET_BYTES:,} bytes; public URL {args.public_url}")
    cases = [(f"bench {n} topics x 4", make_issue(n, 4)) for n in (12, 15, 30)]
    cases += [(f"worst {n} topics x 4", worst_issue(n, 4)) for n in (1, 2, 5, 15, 30, 60)]
    for label, issue in cases:
        variant, decoded, wire, note = sent_html(issue, args.public_url)
        over = "OVER" if decoded > HTML_BUDGET_BYTES else "ok"
        print(
            f"{label:20} variant {variant:9,}  sent {decoded:9,} ({over:4})  wire {wire:9,}  {note}"
        )
    print(f"wall {time.perf_counter() - wall:.1f} s, CPU {time.process_time() - cpu:.1f} s")


if __name__ == "__main__":
    main()
