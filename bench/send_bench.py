"""Send one issue to N synthetic subscribers over 12 topics through the local SendGrid-compatible
server (limits checked, no schema validation, so the server is not what is measured), and in the
same run a naive loop that renders and posts one email per recipient on a 2,000 sample.

    python bench/send_bench.py [--readers 100000] [--database postgresql+psycopg://…]

Prints recipients per second, requests, peak memory (max RSS) and the ratio to the naive loop.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from digest import db
from digest.config import load_config
from digest.personalize import compile_template, token_values
from digest.pipeline import Project
from digest.render import render_issue
from digest.scaffold import scaffold
from subscribers.importer import ImportRow
from subscribers.store import SubscriberStore
from tests.sendgrid_server import API_KEY, running

TOPICS = [f"topic-{i}" for i in range(12)]


def config_text(folder: Path, feeds: Path, database: str | None) -> str:
    topics = "\n".join(
        f'[[topics]]\nslug = "{slug}"\nname = "Topic {i}"\n'
        f'sources = [{{ url = "{feeds}/{slug}.xml" }}]\n'
        for i, slug in enumerate(TOPICS)
    )
    db_line = f'database_url = "{database}"\n' if database else ""
    return f"""{db_line}
[site]
name = "Bench"
url = "https://bench.example"
public_url = "https://digest.bench.example"
postal_address = "1 Road"

{topics}
[[digests]]
slug = "weekly"
name = "Bench Weekly"

[sending]
transport = "sendgrid"
from = "digest@bench.example"
unsubscribe_mailto = "unsubscribe@bench.example"
"""


def write_feeds(folder: Path) -> None:
    folder.mkdir(parents=True)
    for slug in TOPICS:
        items = "".join(
            f"<item><title>{slug} post {n}</title><link>https://bench.example/{slug}/{n}/</link>"
            f"<guid>{slug}-{n}</guid><pubDate>Mon, 16 Nov 2026 0{n}:00:00 GMT</pubDate>"
            f"<description>A post about {slug}, number {n}, long enough to be real.</description>"
            f'<enclosure url="https://img.bench.example/{slug}/{n}.png" type="image/png"/></item>'
            for n in range(4)
        )
        (folder / f"{slug}.xml").write_text(
            f'<rss version="2.0"><channel><title>{slug}</title><link>https://bench.example/</link>'
            f"<description>x</description>{items}</channel></rss>",
            encoding="utf-8",
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--database", default=None, help="default: SQLite in a temporary folder")
    parser.add_argument("--sample", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, running() as server:
        folder = Path(tmp)
        site = scaffold(folder / "site").parent
        write_feeds(site / "bench-feeds")
        (site / "digest.toml").write_text(config_text(site, site / "bench-feeds", args.database))
        config = load_config(site / "digest.toml", {"DIGEST_SECRET_KEY": "bench"})
        config = replace(
            config,
            secrets=replace(
                config.secrets, sendgrid_api_key=API_KEY, sendgrid_api_host=server.host
            ),
        )
        engine = db.make_engine(config.database_url)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
        project = Project.open(config, engine=engine)
        project.gather()
        rng = random.Random(1)
        start = time.perf_counter()
        rows = (
            ImportRow(
                i,
                f"r{i}@bench.example",
                f"Reader {i}",
                frozenset(rng.sample(TOPICS, rng.randint(1, 4))),
            )
            for i in range(args.readers)
        )
        with project.engine.begin() as conn:
            SubscriberStore(conn).upsert(rows, project.clock(), "bench")
        loaded = time.perf_counter() - start

        start = time.perf_counter()
        _, report = project.send()
        seconds = time.perf_counter() - start
        assert report is not None and report.submitted == args.readers
        requests = len(server.accepted)

        # The naive loop: render the reader's variant from scratch and post one email each.
        planned = project.latest_issue()
        assert planned is not None
        ctx = project.email_context(project.config.digest(None), planned.number)
        with project.engine.connect() as conn:
            sample = [
                s for s, _ in zip(SubscriberStore(conn).iterate(), range(args.sample), strict=False)
            ]
        start = time.perf_counter()
        for reader in sample:
            key = reader.topics & frozenset(planned.topic_slugs)
            variant = render_issue(planned, ctx).variant(key)
            values = token_values(
                {
                    "first_name": "R",
                    "email": reader.email,
                    "unsubscribe_url": "https://u",
                    "preferences_url": "https://p",
                },
                dict.fromkeys(key, "https://t"),
            )
            body = {
                "from": {"email": "digest@bench.example"},
                "subject": compile_template(variant.subject).fill(values),
                "content": [
                    {"type": "text/html", "value": compile_template(variant.html).fill(values)}
                ],
                "personalizations": [{"to": [{"email": reader.email}]}],
            }
            request = urllib.request.Request(
                f"{server.host}/v3/mail/send",
                json.dumps(body).encode(),
                {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
            )
            urllib.request.urlopen(request).read()
        naive_each = (time.perf_counter() - start) / len(sample)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"database: {engine.dialect.name}; readers: {args.readers:,} over {len(TOPICS)} topics")
    print(f"loading subscribers (bulk upsert)  : {loaded:8.1f} s")
    print(
        f"send (record, batch, post)         : {seconds:8.1f} s  "
        f"= {args.readers / seconds:,.0f} recipients/s in {requests} requests"
    )
    print(
        f"naive render + post per recipient  : {naive_each * 1000:8.1f} ms each "
        f"(sample of {len(sample):,}) -> {naive_each * args.readers:,.0f} s for all"
    )
    print(f"  ratio naive / batched            : {naive_each * args.readers / seconds:8.0f}x")
    print(f"peak memory (max RSS)              : {peak:8.0f} MB")


if __name__ == "__main__":
    main()
