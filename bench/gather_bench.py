"""Gather from a local HTTP server: 20 feeds x 200 items, first run and a run where every source
answers 304 Not Modified. Prints both figures and their ratio, measured in the same run.

    python bench/gather_bench.py [--feeds 20] [--items 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from digest.app import gathering
from digest.app.wiring import Project
from digest.config import load_config
from tests.feedserver import FeedServer, Handler, running

PARAGRAPH = (
    "<p>Connection pools are queues with a bouncer in front. When the database saturates, "
    "a bigger pool only makes the queue inside the database longer, and latency follows.</p>"
)


def make_feed(number: int, items: int) -> bytes:
    entries = "".join(
        f"""<item>
  <title>Post {i} of feed {number}: on pools &amp; queues</title>
  <link>https://bench{number}.example/posts/{i}/</link>
  <guid isPermaLink="false">bench-{number}-{i}</guid>
  <pubDate>Mon, {1 + i % 28:02d} Sep 2026 10:00:00 GMT</pubDate>
  <category>Backend</category>
  <description>A summary of post {i}, long enough to be taken as a real one.</description>
  <content:encoded><![CDATA[{PARAGRAPH * 6}<img src="/img/{i}.png">]]></content:encoded>
  <media:content url="https://cdn.bench.example/{number}/{i}.jpg" medium="image"
    width="1200" height="600"/>
</item>"""
        for i in range(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        f"<title>Bench feed {number}</title><link>https://bench{number}.example/</link>"
        f"<description>bench</description>{entries}</channel></rss>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    feeds = {f"/feed-{n}.xml": make_feed(n, args.items) for n in range(args.feeds)}

    def serve(body: bytes) -> Callable[[Handler], None]:
        return lambda handler: handler.send_feed(body)

    def routes(server: FeedServer) -> None:
        for path, body in feeds.items():
            server.routes[path] = serve(body)

    with running(routes) as server, tempfile.TemporaryDirectory() as folder:
        sources = ", ".join(
            f'{{ name = "feed {n}", url = "{server.base}/feed-{n}.xml" }}'
            for n in range(args.feeds)
        )
        config = Path(folder) / "digest.toml"
        config.write_text(
            f"""
[site]
name = "Bench"
url = "https://bench.example"
public_url = "http://localhost:8000"
postal_address = "1 Road"
[[topics]]
slug = "backend"
name = "Backend"
sources = [{sources}]
[[digests]]
slug = "weekly"
name = "Weekly"
[sending]
from = "digest@bench.example"
[gather]
allow_private = ["127.0.0.1"]  # the local feed server
""",
            encoding="utf-8",
        )
        project = Project.open(load_config(config, {}))
        start = time.perf_counter()
        first = gathering.gather_sources(project)
        first_seconds = time.perf_counter() - start
        start = time.perf_counter()
        second = gathering.gather_sources(project)
        second_seconds = time.perf_counter() - start

    assert not first.failed and not second.failed
    assert all(s.not_modified for s in second.sources)
    total = args.feeds * args.items
    size = sum(len(b) for b in feeds.values()) / 1e6
    print(f"sources: {args.feeds} feeds x {args.items} items ({size:.1f} MB of XML), local HTTP")
    print(
        f"first gather (fetch, parse, store {first.new} posts): {first_seconds:7.2f} s"
        f"  ({first_seconds / total * 1000:.2f} ms per item)"
    )
    print(f"second gather (every source 304 Not Modified)  : {second_seconds:7.3f} s")
    print(
        f"  ratio first / second                         : {first_seconds / second_seconds:7.0f}x"
    )


if __name__ == "__main__":
    main()
