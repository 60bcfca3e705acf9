"""No feed can make gather hold unbounded memory, store unbounded text, or sink other sources.

The memory bound, measured with tracemalloc around reading and normalizing one source: at most
10 times the body's size plus 10 MB. A feed of one huge item costs about 6 times its size;
feedparser spends some 300 bytes on even an empty entry, which the 10 MB covers for the 5,000
entries a document may hold (FieldLimits.ENTRIES; more are refused before parsing). The body is
at most ``[gather] max_bytes`` (10 MB by default, compressed or not), so gather holds at most
about 10 × max_bytes + 10 MB per source being read, times ``concurrency``. (A JSON document's
objects cost Python up to some 25 times their text: JSON sources are bounded by 25 × max_bytes.)
"""

from __future__ import annotations

import gzip
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from digest import db
from digest.app import gathering
from digest.app.wiring import Project
from digest.config import load_config
from digest.errors import SourceError
from digest.gather import GatherSettings, SourceJob, collect
from digest.gather.fetch import Fetched, FetchLimits, SourceFetcher, http_client
from digest.gather.topics import TopicMapping
from digest.models import FieldLimits, Post, Validators
from tests.feedserver import FeedServer, Route, running

FIELDS = Path(__file__).parents[2] / "data" / "hostile" / "fields"
MEMORY_FACTOR = 10
MEMORY_ALLOWANCE = 10_000_000
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def peak_of(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def collect_file(path: Path, settings: GatherSettings | None = None) -> tuple[object, list[Post]]:
    limits = FetchLimits()
    job = SourceJob(path.stem, path.resolve().as_uri(), TopicMapping.one_topic("all"))
    with http_client(limits) as client:
        outcome, posts, _ = collect(
            job, SourceFetcher(client, limits), Validators(), settings or GatherSettings(), NOW
        )
    return outcome, posts


def rss(items: str) -> bytes:
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'
    ).encode()


def test_one_huge_item_stays_within_the_memory_bound(tmp_path: Path) -> None:
    n = 1_000_000
    body = rss(
        f"<item><title>{'T' * n}</title><link>https://huge.example/1</link>"
        f"<author>{'A' * n}</author><description>{'word ' * (n // 5)}</description></item>"
    )
    path = tmp_path / "huge.xml"
    path.write_bytes(body)
    peak = peak_of(lambda: collect_file(path))
    assert peak < MEMORY_FACTOR * len(body) + MEMORY_ALLOWANCE, f"{peak} for {len(body)} bytes"


def test_many_tiny_items_stay_within_the_memory_bound(tmp_path: Path) -> None:
    body = rss(
        "".join(
            f"<item><title>t{i}</title><link>https://x.example/{i}</link></item>"
            for i in range(3000)
        )
    )
    path = tmp_path / "many.xml"
    path.write_bytes(body)
    result: list[object] = []
    peak = peak_of(lambda: result.append(collect_file(path)))
    assert peak < MEMORY_FACTOR * len(body) + MEMORY_ALLOWANCE, f"{peak} for {len(body)} bytes"


def test_a_feed_of_more_entries_than_the_bound_is_refused_before_parsing(tmp_path: Path) -> None:
    """100,000 empty items (700 KB) would cost feedparser some 30 MB and minutes."""
    path = tmp_path / "many.xml"
    path.write_bytes(rss("<item/>" * 100_000))
    result: list[tuple[object, list[Post]]] = []
    peak = peak_of(lambda: result.append(collect_file(path)))
    outcome = result[0][0]
    assert getattr(outcome, "error", "") == "refused: the document holds more than 5000 entries"
    assert peak < 4_000_000, peak


@pytest.mark.parametrize("name", ["huge_fields.xml", "huge_fields.json"])
def test_stored_fields_are_bounded(engine: Engine, tmp_path: Path, name: str) -> None:
    """On SQLite and PostgreSQL (whose author column holds 300: a longer one used to fail the
    insert of every source's posts)."""
    config = tmp_path / "digest.toml"
    config.write_text(
        f"""
[site]
name = "Bounds"
url = "https://bounds.example"
public_url = "http://localhost:8000"
postal_address = "1 Road"

[[topics]]
slug = "all"
name = "All"
sources = [{{ name = "huge", url = "{(FIELDS / name).resolve().as_uri()}" }}]

[[digests]]
slug = "weekly"
name = "Weekly"

[sending]
from = "digest@bounds.example"
""",
        encoding="utf-8",
    )
    project = Project.open(load_config(config, {}), clock=lambda: NOW, engine=engine)
    report = gathering.gather_sources(project)
    assert not report.failed
    posts = db.posts.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                posts.url,
                func.length(posts.uid),
                func.length(posts.title),
                func.length(posts.excerpt),
                func.length(posts.author),
                func.length(posts.image_alt),
                posts.image_url,
            )
        ).all()
    urls = [r[0] for r in rows]
    assert all(len(u) <= FieldLimits.URL for u in urls)  # the 3,000-character link: skipped
    assert len(rows) == (2 if name.endswith(".xml") else 1)
    for _, uid, title, excerpt, author, alt, image_url in rows:
        assert uid <= FieldLimits.UID and title <= FieldLimits.TITLE
        assert excerpt <= FieldLimits.EXCERPT and (author or 0) <= FieldLimits.AUTHOR
        assert (alt or 0) <= FieldLimits.ALT and len(image_url or "") <= FieldLimits.URL
    with engine.connect() as conn:
        title = conn.execute(select(posts.title).where(posts.title.like("Headline%"))).scalar()
    assert title is not None and title.endswith("…")


def test_quadratic_regexes_are_gone(tmp_path: Path) -> None:
    """'<p' × 200,000 in a body (our block-tag regex) and a 1 MB run of letters as author
    (feedparser's e-mail regex) once took hours; now each is linear. The budget is 120 s for
    what takes well under 2 s here: only a return of the quadratic cost can miss it."""
    body = rss(
        f"<item><title>Slow</title><link>https://x.example/1</link><author>{'A' * 1_000_000}"
        f"</author><description>{'&lt;p' * 200_000}</description></item>"
    )
    path = tmp_path / "slow.xml"
    path.write_bytes(body)
    done = threading.Event()
    result: list[object] = []

    def work() -> None:
        result.append(collect_file(path))
        done.set()

    threading.Thread(target=work, daemon=True).start()
    assert done.wait(120), "reading took over 120 s: a quadratic regex is back"


@pytest.fixture(scope="module")
def server() -> Iterator[FeedServer]:
    good = rss("<item><title>Good</title><link>https://x.example/good</link></item>")
    bomb = gzip.compress(b" " * 200_000_000, 9)

    def setup(s: FeedServer) -> None:
        def route(body: bytes, ctype: str = "application/rss+xml", **h: str) -> Route:
            return lambda handler: handler.send_bytes(200, body, ctype, **h)

        s.routes.update(
            {
                "/good.xml": route(good),
                "/empty.xml": route(b""),
                "/blank.xml": route(b"  \r\n\t"),
                "/nested.json": route(b"[" * 100_000, "application/json"),
                "/big-int.json": route(b'{"version": ' + b"1" * 5_000 + b"}", "application/json"),
                "/gzip-bomb.xml": route(bomb, Content_Encoding="gzip"),
                "/brotli.xml": route(good, Content_Encoding="br"),
                "/gzip.xml": route(gzip.compress(good), Content_Encoding="gzip"),
                "/deflate.xml": route(zlib.compress(good), Content_Encoding="deflate"),
                "/raw-deflate.xml": route(zlib.compress(good)[2:-4], Content_Encoding="deflate"),
            }
        )

    with running(setup) as s:
        yield s


def gather_from(server: FeedServer, tmp_path: Path, names: list[str]) -> dict[str, str | None]:
    sources = ", ".join(f'{{ name = "{n}", url = "{server.base}/{n}" }}' for n in names)
    config = tmp_path / "digest.toml"
    config.write_text(
        f"""
[site]
name = "Bounds"
url = "https://bounds.example"
public_url = "http://localhost:8000"
postal_address = "1 Road"

[[topics]]
slug = "all"
name = "All"
sources = [{sources}]

[[digests]]
slug = "weekly"
name = "Weekly"

[sending]
from = "digest@bounds.example"

[gather]
allow_private = ["127.0.0.1"]
max_bytes = 1000000
retries = 0
""",
        encoding="utf-8",
    )
    project = Project.open(load_config(config, {}), clock=lambda: NOW)
    report = gathering.gather_sources(project)
    with project.reading() as conn:
        stored = conn.execute(select(db.posts.c.url)).scalars().all()
    assert stored == ["https://x.example/good"], "the good source is stored whatever the others do"
    return {s.job.name: s.error for s in report.sources}


def test_an_empty_body_fails_its_source_by_name_and_the_others_are_stored(
    server: FeedServer, tmp_path: Path
) -> None:
    """A zero-byte 200 used to raise AttributeError out of feedparser's result and store
    nothing from any source."""
    errors = gather_from(server, tmp_path, ["good.xml", "empty.xml", "blank.xml"])
    assert errors["good.xml"] is None
    assert errors["empty.xml"] == errors["blank.xml"] == "empty body: the server sent no document"


def test_json_that_nests_too_deep_or_holds_a_huge_number_fails_by_name(
    server: FeedServer, tmp_path: Path
) -> None:
    errors = gather_from(server, tmp_path, ["good.xml", "nested.json", "big-int.json"])
    assert "recursion" in (errors["nested.json"] or "")
    assert "does not parse" in (errors["big-int.json"] or "")


def test_a_gzip_bomb_stops_at_max_bytes_within_the_memory_bound(
    server: FeedServer, tmp_path: Path
) -> None:
    """200 MB of spaces in 200 KB of gzip: inflated here no further than max_bytes (1 MB),
    so the peak stays under 16 MB."""
    holder: list[dict[str, str | None]] = []
    peak = peak_of(
        lambda: holder.append(gather_from(server, tmp_path, ["good.xml", "gzip-bomb.xml"]))
    )
    assert holder[0]["gzip-bomb.xml"] == "body over the limit of 1000000 bytes"
    assert peak < 16_000_000, peak


def test_compressed_bodies_still_read_and_unknown_codings_fail_by_name(
    server: FeedServer, tmp_path: Path
) -> None:
    names = ["good.xml", "gzip.xml", "deflate.xml", "raw-deflate.xml", "brotli.xml"]
    errors = gather_from(server, tmp_path, names)
    assert errors["gzip.xml"] is errors["deflate.xml"] is errors["raw-deflate.xml"] is None
    assert "unsupported Content-Encoding 'br'" in (errors["brotli.xml"] or "")


class Unforeseen:
    """A fetcher that fails the way nothing foresaw (an adapter bug, a library's surprise)."""

    def fetch(self, location: str, validators: Validators) -> Fetched:
        raise RuntimeError("surprise")


def test_an_unforeseen_failure_is_reported_by_name() -> None:
    job = SourceJob("odd one", "https://odd.example/feed.xml", TopicMapping.one_topic("all"))
    outcome, posts, _ = collect(job, Unforeseen(), Validators(), GatherSettings(), NOW)
    assert outcome.error == "unexpected RuntimeError while reading it: surprise" and not posts


def test_the_decoder_refuses_corrupt_gzip() -> None:
    from digest.gather.fetch import BoundedDecoder

    with pytest.raises(SourceError, match="not valid gzip"):
        BoundedDecoder("gzip", 1000).feed(b"not gzip at all")
