"""The web archive: what readers got (not an issue waiting for approval, held or skipped),
rendered once and kept, rendered again only when what renders it changed, never holding
anything personal; its index and Atom feed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import feedparser
from sqlalchemy import Engine, select

from digest import db
from digest.app import gathering, issues, sending
from digest.app.archive import ArchivePages
from digest.app.wiring import Project
from digest.config import Config, load_config
from digest.models import Issue
from digest.stores.issues import set_approval
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock

READERS = [
    ("ann.reader@example.com", "Ann Quill", {"backend", "ai-ml"}),
    ("bo.reader@example.com", "Bo Sender", {"frontend"}),
    ("cy.reader@example.com", "Cy Datum", {"data", "security"}),
]


def _project(config: Config, clock: FixedClock, engine: Engine) -> Project:
    project = Project.open(config, clock=clock, engine=engine)
    gathering.gather_sources(project)
    with project.transaction() as conn:
        store = SubscriberStore(conn)
        for email, name, topics in READERS:
            store.add(email, name, frozenset(topics), clock(), "test")
    return project


def sqlite_engine(folder: Path) -> Engine:
    return db.make_engine(f"sqlite:///{folder / 'archive.sqlite3'}")


def _stored(project: Project) -> list[tuple[int, str, str]]:
    with project.reading() as conn:
        rows = conn.execute(
            select(
                db.archive_pages.c.number, db.archive_pages.c.fingerprint, db.archive_pages.c.html
            )
        )
        return [(r.number, r.fingerprint, r.html) for r in rows]


def test_only_issues_that_went_out_are_in_the_archive(
    example_config: Config, clock: FixedClock, engine: Engine
) -> None:
    project = _project(example_config, clock, engine)
    pages = ArchivePages(project)
    planned = issues.plan(project)
    assert planned is not None and planned.issue.id is not None
    assert pages.page("weekly", 1) is None  # planned: not public yet
    with project.transaction() as conn:
        set_approval(conn, planned.issue.id, "skipped", "ed@example.com", clock())
    assert pages.page("weekly", 1) is None
    _, report = sending.send(project)
    assert report is not None
    page = pages.page("weekly", 2)
    assert page is not None and b"The Northwind Weekly" in page.body
    assert pages.page("weekly", 3) is None
    assert pages.page("monthly", 2) is None  # no such digest: not an error
    assert [n for n, _, _ in _stored(project)] == [2]  # nothing kept for what is not public


def test_a_page_is_rendered_once_and_again_when_its_config_changes(
    example_config: Config, clock: FixedClock, engine: Engine, tmp_path: Path
) -> None:
    project = _project(example_config, clock, engine)
    sending.send(project)
    first = ArchivePages(project).page("weekly", 1)
    assert first is not None and first.last_modified == clock()
    [(_, fingerprint, html)] = _stored(project)
    assert html.encode() == first.body

    # Another process (a new ArchivePages) later: served from the database, not rendered.
    clock.now += timedelta(hours=1)
    again = ArchivePages(Project.open(example_config, clock=clock, engine=engine))
    kept = again.page("weekly", 1)
    assert kept == first

    # The site's name changes: the kept page is stale; it is rendered and kept anew.
    toml = example_config.path.read_text(encoding="utf-8")
    assert 'name = "Northwind Engineering"' in toml
    example_config.path.write_text(
        toml.replace('name = "Northwind Engineering"', 'name = "Southwind Labs"'),
        encoding="utf-8",
    )
    changed = load_config(
        example_config.path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
    )
    renamed = ArchivePages(Project.open(changed, clock=clock, engine=engine)).page("weekly", 1)
    assert renamed is not None and renamed.last_modified == clock()
    assert b"Southwind Labs" in renamed.body and b"Southwind Labs" not in first.body
    assert renamed.etag != first.etag
    [(_, new_fingerprint, new_html)] = _stored(project)
    assert new_fingerprint != fingerprint and new_html.encode() == renamed.body


def test_an_issue_edited_before_it_went_out_shows_as_sent(
    example_config: Config, clock: FixedClock, tmp_path: Path
) -> None:
    engine = sqlite_engine(tmp_path)  # the store's own tests run on both databases
    project = _project(example_config, clock, engine)
    planned = issues.plan(project)
    assert planned is not None and planned.issue.id is not None
    left_out = planned.issue.sections[0].posts[0]
    pages = ArchivePages(project)
    assert pages.page("weekly", 1) is None
    issues.edit(
        project, planned.issue.id, "exclude", left_out.id, planned.issue.sections[0].topic.slug
    )
    sending.send(project)
    page = pages.page("weekly", 1)
    assert page is not None
    kept = planned.issue.sections[0].posts[1].post.title
    assert _escaped(kept).encode() in page.body
    assert _escaped(left_out.post.title).encode() not in page.body


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&#34;")


def test_the_kept_page_holds_nothing_personal(
    example_config: Config, clock: FixedClock, tmp_path: Path
) -> None:
    engine = sqlite_engine(tmp_path)  # the store's own tests run on both databases
    project = _project(example_config, clock, engine)
    sending.send(project)
    page = ArchivePages(project).page("weekly", 1)
    assert page is not None
    [(_, _, stored)] = _stored(project)
    signer = project.signer()
    with project.reading() as conn:
        ids = [SubscriberStore(conn).get(email).id for email, _, _ in READERS]  # type: ignore[union-attr]
    for body in (page.body, stored.encode()):
        for email, name, _ in READERS:
            assert email.encode() not in body
            assert name.encode() not in body
            assert email.split("@")[0].encode() not in body
        for subscriber_id in ids:
            token = signer.manage_token(subscriber_id)
            assert token.encode() not in body
            assert token.rsplit(".", 1)[1].encode() not in body  # its signature alone
        assert b"%%" not in body  # no token left for anyone to fill
        assert b"/unsubscribe" not in body and b"/preferences" not in body
        assert b"Hi there" not in body and b"You are getting this" not in body
        assert body.count(b"<main>") == 1 and body.count(b"</main>") == 1


def test_index_and_feed_list_the_issues_that_went_out(
    example_config: Config, clock: FixedClock, tmp_path: Path
) -> None:
    engine = sqlite_engine(tmp_path)  # the store's own tests run on both databases
    toml = example_config.path.read_text(encoding="utf-8")
    example_config.path.write_text(
        toml.replace('name = "The Northwind Weekly"', 'name = "R&D <Weekly> \\"Notes\\""'),
        encoding="utf-8",
    )
    config = load_config(
        example_config.path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
    )
    project = _project(config, clock, engine)
    pages = ArchivePages(project)
    index = pages.index("weekly")
    assert index is not None and index.entries == ()
    empty = feedparser.parse(pages.feed("weekly"))
    assert not empty.bozo and empty.entries == []

    sent, _ = sending.send(project)
    assert sent is not None
    clock.now += timedelta(days=7)
    issues.plan(project)  # planned, not sent: not listed
    index = pages.index("weekly")
    assert index is not None
    assert [e.number for e in index.entries] == [1]

    body = pages.feed("weekly")
    assert body is not None and body.startswith(b"<?xml")
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    public = config.site.public_url
    assert parsed.feed.title == 'R&D <Weekly> "Notes"'  # escaped in the XML, intact when read
    assert parsed.feed.id == f"{public}/archive/weekly/"
    assert parsed.feed.updated_parsed is not None
    assert {link.rel: link.href for link in parsed.feed.links} == {
        "self": f"{public}/archive/weekly/feed.atom",
        "alternate": f"{public}/archive/weekly/",
    }
    assert parsed.feed.author_detail.name == config.site.name
    [entry] = parsed.entries
    assert entry.id == entry.link == f"{public}/archive/weekly/1/"
    assert entry.title == 'R&D <Weekly> "Notes" · Issue 1'
    assert entry.updated_parsed is not None
    for section in sent.issue.sections:
        assert section.topic.name in entry.summary
        assert all(p.post.title in entry.summary for p in section.posts)
    assert pages.index("monthly") is None and pages.feed("monthly") is None


class CountingPages(ArchivePages):
    """Counts full renders of a page."""

    renders = 0

    def html(self, issue: Issue) -> str:
        self.renders += 1
        return super().html(issue)


def test_a_cold_page_asked_for_at_once_is_rendered_once(
    example_project: Project, clock: FixedClock
) -> None:
    gathering.gather_sources(example_project)
    with example_project.transaction() as conn:
        SubscriberStore(conn).add("a@example.com", "", frozenset({"backend"}), clock(), "test")
    sending.send(example_project)
    pages = CountingPages(example_project)
    start = threading.Barrier(12)

    def ask(_: int) -> bytes:
        start.wait()
        found = pages.page("weekly", 1)
        assert found is not None
        return found.body

    with ThreadPoolExecutor(12) as pool:
        bodies = set(pool.map(ask, range(12)))
    assert len(bodies) == 1 and pages.renders == 1
    assert pages._rendering == {}  # no lock left behind
    # Another process has it from the database: no render at all.
    other = CountingPages(example_project)
    assert other.page("weekly", 1) is not None and other.renders == 0
