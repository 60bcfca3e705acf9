"""Render once, assemble per segment, personalize per recipient: figures and ratios, same run.

    python bench/render_bench.py [--topics 12] [--posts 4] [--recipients 2000]

Prints medians; compares assembling a variant from the once-compiled issue with compiling
that variant in full (Jinja2 → MJML → premailer), and split-join filling with chained
``str.replace``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import combinations

from digest.models import HeroImage, Issue, IssueSection, Post, StoredPost, Topic
from digest.personalize import HTML_TOKENS, TEXT_TOKENS, compile_template, token_values
from digest.render import EmailContext, render_issue
from digest.render.mjml import compile_mjml, unescape_attributes

NOW = datetime(2026, 11, 23, tzinfo=UTC)
MJML_SAMPLE = (
    '<mjml><mj-body><mj-section><mj-column><mj-image src="https://x.example/a.png" '
    'alt="We ❤\ufe0f Postgres" /></mj-column></mj-section></mj-body></mjml>'
)


def median_wall_cpu(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_issue(topics: int, posts: int) -> Issue:
    sections = []
    for t in range(topics):
        topic = Topic(f"topic-{t}", f"Topic number {t}")
        cards = tuple(
            StoredPost(
                t * 100 + p,
                Post(
                    uid=f"{t}-{p}",
                    url=f"https://blog.example.com/{t}/{p}/",
                    title=f"A reasonably long post title number {p} about topic {t}",
                    excerpt="An excerpt of about forty words. " * 6,
                    published_at=NOW,
                    topics=(topic.slug,),
                    author="Author Name",
                    image=HeroImage(f"https://img.example.com/{t}-{p}.png", "alt", 1200, 600),
                    reading_minutes=4,
                ),
                NOW,
            )
            for p in range(posts)
        )
        sections.append(IssueSection(topic, cards))
    return Issue("bench", 1, tuple(sections), NOW, 1, NOW)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topics", type=int, default=12)
    parser.add_argument("--posts", type=int, default=4)
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--full-compiles", type=int, default=30)
    args = parser.parse_args()

    issue = make_issue(args.topics, args.posts)
    ctx = EmailContext(
        "Bench",
        "https://blog.example.com",
        "1 Road",
        "Bench Weekly",
        "UTC",
        topic_urls={s.topic.slug: "https://blog.example.com/t/" for s in issue.sections},
    )
    slugs = issue.topic_slugs
    keys = [frozenset(c) for n in range(1, len(slugs) + 1) for c in combinations(slugs, n)]

    compile_once = median_seconds(lambda: render_issue(issue, ctx), 5)
    rendered = render_issue(issue, ctx)
    start = time.perf_counter()
    variants = [rendered.variant(key) for key in keys]
    assemble_each = (time.perf_counter() - start) / len(keys)

    sample = keys[:: max(1, len(keys) // args.full_compiles)][: args.full_compiles]

    def full(key: frozenset[str]) -> str:
        """A variant rendered from scratch: Jinja2, MJML and premailer for this segment alone."""
        sections, _, texts = rendered.fitted(key)
        return rendered.renderer.document(issue, sections, texts)

    start = time.perf_counter()
    for key in sample:
        full(key)
    full_each = (time.perf_counter() - start) / len(sample)

    html = variants[-1].html
    template = compile_template(html)
    people = [
        token_values(
            {
                "first_name": f"Reader{i}",
                "email": f"r{i}@example.com",
                "unsubscribe_url": f"https://x.example/u/{i:032d}",
                "preferences_url": f"https://x.example/p/{i:032d}",
            },
            {slug: f"https://x.example/t/{slug}/{i:032d}" for slug in slugs},
        )
        for i in range(args.recipients)
    ]
    start = time.perf_counter()
    for values in people:
        template.fill(values)
    fill_each = (time.perf_counter() - start) / len(people)

    topic_keys = [k for k in people[0] if "unsubscribe_topic" in k]

    def chained(values: dict[str, str]) -> str:
        out = html
        for token in (*HTML_TOKENS.values(), *TEXT_TOKENS.values(), *topic_keys):
            out = out.replace(token, values[token])
        return out

    replace_sample = people[: max(1, args.recipients // 10)]
    start = time.perf_counter()
    for values in replace_sample:
        chained(values)
    replace_each = (time.perf_counter() - start) / len(replace_sample)

    print(f"issue: {args.topics} topics x {args.posts} posts, {len(keys)} topic sets")
    print(f"compile + inline once per issue : {compile_once * 1000:9.1f} ms")
    print(f"assemble one variant            : {assemble_each * 1000:9.3f} ms")
    print(f"full compile of one variant     : {full_each * 1000:9.1f} ms  ({len(sample)} sampled)")
    print(f"  ratio full / assemble         : {full_each / assemble_each:9.0f}x")
    all_assembled = compile_once + assemble_each * len(keys)
    print(f"all {len(keys)} variants, assembled : {all_assembled:9.2f} s")
    print(f"all {len(keys)} variants, full      : {full_each * len(keys):9.2f} s (estimated)")
    print(f"personalize one recipient       : {fill_each * 1e6:9.1f} us (split-join)")
    print(f"  chained str.replace           : {replace_each * 1e6:9.1f} us")
    print(f"  ratio replace / split-join    : {replace_each / fill_each:9.1f}x")
    print(f"  ratio full compile / person   : {full_each / fill_each:9.0f}x")
    print(f"variant HTML size               : {len(html.encode()) / 1024:9.1f} KiB (all topics)")
    trimmed = sum(1 for v in variants if v.trimmed)
    print(f"variants trimmed to the budget  : {trimmed:9d} of {len(variants)}")

    # mrml's Rust escapes in attribute values, undone on a whole issue's HTML in which every
    # image's alt holds escapes (the slow path: one emoji with a variation selector is enough).
    raw = rendered.renderer.document(issue, rendered.sections(frozenset(slugs)), None)
    escaped = raw.replace('alt="alt"', 'alt="We \\u{2764}\\u{fe0f} Postgres"')
    wall, cpu = median_wall_cpu(lambda: unescape_attributes(escaped), 20)
    print(f"undo mrml's escapes, whole issue: {wall * 1000:9.2f} ms wall, {cpu * 1000:.2f} ms CPU")
    wall, cpu = median_wall_cpu(lambda: compile_mjml(MJML_SAMPLE), 20)
    print(f"compile_mjml, one small document: {wall * 1000:9.2f} ms wall, {cpu * 1000:.2f} ms CPU")


if __name__ == "__main__":
    main()
