"""Feeds that declare entities are refused however they are written (tests/data/hostile).

Each fixture is gathered for real (a file source, then one over HTTP), and memory is measured
with tracemalloc: the bound is 4 MB for reading a hostile document of at most 133 KB, where an
expansion would be 40 MB or more.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from defusedxml.expatreader import DefusedExpatParser
from feedparser import api as feedparser_api

from digest.app import gathering
from digest.app.wiring import Project
from digest.errors import SourceError
from digest.gather import xmlguard
from digest.gather.feed import parse_document, read_feed
from tests.feedserver import FeedServer, Handler, running

HOSTILE = Path(__file__).parents[2] / "data" / "hostile"
FIXTURES = sorted(HOSTILE.glob("*.xml"))
READ_BOUND_BYTES = 4_000_000
ENTITIES_REFUSED = "refused: the document declares its own XML entities"
EXTERNAL_DTD_REFUSED = "refused: the document names an external DTD"
REACHES_EXPAT = [
    "billion_laughs.xml",
    "comment_bracket.xml",
    "padded.xml",
    "utf16_bom.xml",
    "utf16_no_bom.xml",
    "utf32_bom.xml",
]


def test_every_trick_has_its_fixture() -> None:
    assert {p.name for p in FIXTURES} >= {
        *REACHES_EXPAT,
        "one_line.xml",
        "parameter_entities.xml",
        "external_entity.xml",
        "external_dtd.xml",
        "loose_parser.xml",
    }


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_each_fixture_is_refused_within_the_memory_bound(path: Path) -> None:
    body = path.read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as refused:
            read_feed(body, "https://hostile.example/feed.xml")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected = EXTERNAL_DTD_REFUSED if path.name == "external_dtd.xml" else ENTITIES_REFUSED
    assert str(refused.value).startswith(expected)
    assert peak < READ_BOUND_BYTES, f"{path.name}: {peak} bytes"


@pytest.mark.parametrize("name", REACHES_EXPAT)
def test_feedparsers_strict_parser_refuses_entities_by_itself(name: str) -> None:
    """The second guard: had the decoding-aware check missed one, defusedxml (feedparser's
    SAX driver now) raises instead of expanding."""
    with pytest.raises(SourceError, match="EntitiesForbidden"):
        parse_document((HOSTILE / name).read_bytes(), "https://hostile.example/feed.xml")


def test_feedparser_parses_with_defusedxml_only() -> None:
    import xml.sax

    assert feedparser_api.PREFERRED_XML_PARSERS == [xmlguard.DEFUSED_SAX_DRIVER]
    driver = xml.sax.make_parser(feedparser_api.PREFERRED_XML_PARSERS)  # noqa: S317 (the check)
    assert isinstance(driver, DefusedExpatParser)


def test_documents_without_declarations_still_parse() -> None:
    """A bare DOCTYPE (an HTML page at a feed's address) is not refused for it, and a post
    may quote '<!ENTITY' as escaped text."""
    page = b"<!DOCTYPE html><html><head><title>Not a feed</title></head></html>"
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):
        read_feed(page, "https://example.com/")
    quoting = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        b"<title>On &lt;!ENTITY&gt; attacks</title><link>https://example.com/1</link>"
        b"</item></channel></rss>"
    )
    assert [e.title for e in read_feed(quoting, "https://example.com/feed")] == [
        "On <!ENTITY> attacks"
    ]


def with_sources(project: Project, sources: list[tuple[str, str]], allow: str = "") -> Project:
    """The example project with more shared sources (and an allow list), on its database."""
    from digest.config import load_config

    path = project.config.path
    text = path.read_text(encoding="utf-8")
    if allow:
        text = text.replace("[gather]\n", f"[gather]\nallow_private = [{allow}]\n", 1)
    text += "".join(f'\n[[sources]]\nname = "{n}"\nurl = "{u}"\n' for n, u in sources)
    path.write_text(text, encoding="utf-8")
    return Project.open(load_config(path, {}), clock=project.clock, engine=project.engine)


def test_a_file_source_of_each_trick_fails_by_name_and_the_good_ones_are_stored(
    example_project: Project,
) -> None:
    """Through gather itself: every hostile file is a failed source named in the report; the
    example site's own feeds (files too) are stored."""
    project = with_sources(example_project, [(p.stem, p.resolve().as_uri()) for p in FIXTURES])
    report = gathering.gather_sources(project)
    errors = {s.job.name: s.error or "" for s in report.failed}
    assert set(errors) == {p.stem for p in FIXTURES}
    assert all(e.startswith("refused: the document") for e in errors.values())
    assert report.new > 0


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[FeedServer]:
    def setup(server: FeedServer) -> None:
        for path in FIXTURES:

            def serve(h: Handler, body: bytes = path.read_bytes()) -> None:
                # No charset, as many servers send it: the document's own bytes must tell.
                h.send_bytes(200, body, "application/rss+xml")

            server.routes[f"/hostile/{path.name}"] = serve

    with running(setup) as server:
        yield server


def test_over_http_each_trick_fails_by_name_and_no_dtd_is_fetched(
    hostile_server: FeedServer, example_project: Project
) -> None:
    sources = [(p.stem, f"{hostile_server.base}/hostile/{p.name}") for p in FIXTURES]
    project = with_sources(example_project, sources, allow='"127.0.0.1"')
    report = gathering.gather_sources(project)
    errors = {s.job.name: s.error or "" for s in report.failed}
    assert set(errors) == {p.stem for p in FIXTURES}
    assert all(e.startswith("refused: the document") for e in errors.values())
    assert all(path.startswith("/hostile/") for path, _ in hostile_server.requests)


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/rss+xml", ENTITIES_REFUSED),
        ("text/xml; charset=utf-16", ENTITIES_REFUSED),
        ("text/xml; charset=utf-8", "not an RSS or Atom feed"),
        ("text/xml", "not an RSS or Atom feed"),  # RFC 3023: text/xml is us-ascii by default
    ],
)
def test_no_declared_charset_gets_a_declaration_expanded(content_type: str, expected: str) -> None:
    """The check reads the bytes as feedparser will: where the header makes feedparser read
    UTF-16 the declaration is seen and refused; where it makes feedparser read them otherwise,
    feedparser sees no declaration either (nor a feed)."""
    body = (HOSTILE / "utf16_bom.xml").read_bytes()
    tracemalloc.start()
    try:
        with pytest.raises(SourceError) as refused:
            read_feed(body, "https://hostile.example/feed.xml", content_type)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < READ_BOUND_BYTES
    assert str(refused.value).startswith(expected)
