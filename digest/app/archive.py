"""The web archive: each issue's page ("view in browser"), an index of a digest's issues and an
Atom feed of them. Only issues that went out are public.

An issue's page costs two full compiles (the issue, then the page), and link scanners fetch it
as soon as an email lands, so it is rendered once per issue and kept: in the database
(:mod:`digest.stores.archive`, shared by every process and kept across restarts) and in a
small memory of this process's most recent pages. An issue that went out never changes
(:mod:`digest.lifecycle`: posts change only while it is planned), so what can make a kept page
stale is what it was rendered with: the digest's config, the templates and this code. Their
fingerprint is kept beside the page, and a page of another fingerprint is rendered again.
Templates edited while the server runs count from its next start.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from xml.etree import ElementTree as ET

from digest.app import issues as issue_cases
from digest.app.wiring import Project, archive_url
from digest.config import DigestConfig
from digest.errors import ConfigError
from digest.lifecycle import IssueStatus
from digest.models import Issue
from digest.render import ArchiveLinks
from digest.render.environment import template_folder
from digest.stores import archive as archive_store
from digest.stores import issues as issue_store

ATOM = "http://www.w3.org/2005/Atom"
PUBLIC = (IssueStatus.SENDING, IssueStatus.SENT)
"""An issue is public once it started going out: some reader may have it."""
FEED_ENTRIES = 20
MAX_NUMBER = 2**31 - 1
"""Issue numbers are 32-bit integers in the database: a larger one names no issue."""
INDEX_ISSUES = 200
CACHE_CONTROL = "public, max-age=600"
"""Scanners and browsers may keep a page ten minutes without asking; after that a conditional
GET (ETag, Last-Modified) costs a 304."""


@dataclass(frozen=True)
class ArchivePage:
    """A page ready to serve: its bytes and validators."""

    body: bytes
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class IndexEntry:
    number: int
    url: str
    sent_at: datetime
    topics: tuple[str, ...]
    post_count: int


@dataclass(frozen=True)
class ArchiveIndex:
    digest: str
    name: str
    entries: tuple[IndexEntry, ...]
    feed_url: str
    subscribe_url: str


def index_url(public_url: str, digest: str) -> str:
    return f"{public_url}/archive/{digest}/"


def feed_url(public_url: str, digest: str) -> str:
    return f"{public_url}/archive/{digest}/feed.atom"


def archive_links(project: Project, digest: str) -> ArchiveLinks:
    """Where the web-archive page's footer leads: sign-up, the index, the feed."""
    public = project.config.site.public_url
    return ArchiveLinks(f"{public}/subscribe", index_url(public, digest), feed_url(public, digest))


def _fingerprint_of_templates(folders: list[Path]) -> Iterator[bytes]:
    for folder in folders:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            yield str(path.relative_to(folder)).encode()
            yield path.read_bytes()


class ArchivePages:
    """The web archive of one project. ``memory`` pages are kept in this process (0: none);
    ``store`` False renders every page on every request (what the benchmark compares with)."""

    def __init__(self, project: Project, memory: int = 64, store: bool = True) -> None:
        self.project = project
        self.memory = memory
        self.store = store
        self._pages: OrderedDict[tuple[str, int], ArchivePage] = OrderedDict()
        self._lists: dict[str, tuple[tuple[object, ...], ArchiveIndex, bytes]] = {}
        self._guard = threading.Lock()
        self._rendering: dict[tuple[str, int], threading.Lock] = {}
        self.fingerprint = self._fingerprint()

    # what a page is rendered with ----------------------------------------------------------

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        try:
            digest.update(metadata.version("digest-generator").encode())
        except metadata.PackageNotFoundError:  # pragma: no cover - a checkout not installed
            digest.update(b"unversioned")
        config = self.project.config
        digest.update(config.site.public_url.encode())
        for d in config.digests:
            digest.update(repr(self.project.email_context(d, 0)).encode())
            digest.update(repr(self.project.topics(d)).encode())
        folders = [template_folder()]
        if config.site.templates:
            folders.insert(0, config.resolve_path(config.site.templates))
        for chunk in _fingerprint_of_templates(folders):
            digest.update(chunk)
        return digest.hexdigest()

    def _digest(self, slug: str) -> DigestConfig | None:
        try:
            return self.project.config.digest(slug)
        except ConfigError:
            return None

    # an issue's page -------------------------------------------------------------------------

    def page(self, digest: str, number: int) -> ArchivePage | None:
        """The issue's page, or None when there is no such issue or it did not go out."""
        if self._digest(digest) is None or not 0 < number <= MAX_NUMBER:
            return None
        key = (digest, number)
        found = self._remembered(key)
        if found is not None:
            return found
        try:
            with self._lock_for(key):  # one render per issue, however many ask at once
                found = self._remembered(key)
                if found is None:
                    found = self._load_or_render(digest, number)
                    if found is not None:
                        self._remember(key, found)
                return found
        finally:
            with self._guard:  # a scanner asking for every number leaves nothing behind
                self._rendering.pop(key, None)

    def html(self, issue: Issue) -> str:
        """The page of ``issue`` as it is now (the preview writes it for a planned issue)."""
        return self.project.render(issue).archive_page(archive_links(self.project, issue.digest))

    def _load_or_render(self, digest: str, number: int) -> ArchivePage | None:
        if self.store:
            with self.project.reading() as conn:
                cached = archive_store.cached_page(conn, digest, number)
            if cached is not None and cached.fingerprint == self.fingerprint:
                return ArchivePage(cached.html.encode(), cached.etag, cached.rendered_at)
        with self.project.reading() as conn:
            row = issue_store.issue_by_number(conn, digest, number)
        if row is None or row.status not in PUBLIC:
            return None  # planned, held or skipped issues are not public: no reader got them
        html = self.html(issue_cases.load(self.project, row.id))
        body = html.encode()
        page = ArchivePage(body, _etag(body), self.project.clock())
        if self.store:
            with self.project.transaction() as conn:
                archive_store.store_page(
                    conn,
                    archive_store.CachedPage(
                        digest, number, self.fingerprint, page.etag, html, page.last_modified
                    ),
                )
        return page

    def remembered(self, digest: str, number: int) -> ArchivePage | None:
        """The page if this process holds it: no I/O, so the web face answers it on the
        event loop. None says nothing about the issue: ask :meth:`page`."""
        return self._remembered((digest, number))

    def _remembered(self, key: tuple[str, int]) -> ArchivePage | None:
        if not self.memory or not self.store:
            return None
        with self._guard:
            found = self._pages.get(key)
            if found is not None:
                self._pages.move_to_end(key)
            return found

    def _remember(self, key: tuple[str, int], page: ArchivePage) -> None:
        if not self.memory or not self.store:
            return
        with self._guard:
            self._pages[key] = page
            while len(self._pages) > self.memory:
                self._pages.popitem(last=False)

    def _lock_for(self, key: tuple[str, int]) -> threading.Lock:
        with self._guard:
            return self._rendering.setdefault(key, threading.Lock())

    # the index and the feed ------------------------------------------------------------------

    def index(self, digest: str) -> ArchiveIndex | None:
        """The digest's issues that went out, newest first; None for an unknown digest."""
        found = self._lists_of(digest)
        return found[0] if found else None

    def feed(self, digest: str) -> bytes | None:
        """An Atom feed of the digest's latest issues that went out."""
        found = self._lists_of(digest)
        return found[1] if found else None

    def _lists_of(self, digest: str) -> tuple[ArchiveIndex, bytes] | None:
        config = self._digest(digest)
        if config is None:
            return None
        with self.project.reading() as conn:
            rows = issue_store.public_issues(conn, digest, INDEX_ISSUES)
        signature = tuple((r.number, r.status, r.sent_at) for r in rows)
        with self._guard:
            kept = self._lists.get(digest)
        if kept is not None and kept[0] == signature:
            return kept[1], kept[2]
        issues = [issue_cases.load(self.project, r.id) for r in rows]
        public = self.project.config.site.public_url
        entries = tuple(
            IndexEntry(
                issue.number,
                archive_url(public, digest, issue.number),
                row.sent_at or row.created_at,
                tuple(s.topic.name for s in issue.sections),
                issue.post_count,
            )
            for row, issue in zip(rows, issues, strict=True)
        )
        index = ArchiveIndex(
            digest,
            config.name,
            entries,
            feed_url(public, digest),
            f"{public}/subscribe",
        )
        feed = self._atom(config, issues[:FEED_ENTRIES], entries[:FEED_ENTRIES])
        with self._guard:
            self._lists[digest] = (signature, index, feed)
        return index, feed

    def _atom(
        self, config: DigestConfig, issues: list[Issue], entries: tuple[IndexEntry, ...]
    ) -> bytes:
        site = self.project.config.site
        ET.register_namespace("", ATOM)

        def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> None:
            child = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
            child.text = text

        feed = ET.Element(f"{{{ATOM}}}feed", {"xml:lang": site.language})
        sub(feed, "id", index_url(site.public_url, config.slug))
        sub(feed, "title", config.name)
        sub(feed, "subtitle", f"Past issues of {config.name} from {site.name}")
        updated = entries[0].sent_at if entries else self.project.clock()
        sub(feed, "updated", updated.isoformat())
        sub(feed, "link", rel="self", href=feed_url(site.public_url, config.slug))
        sub(
            feed,
            "link",
            rel="alternate",
            type="text/html",
            href=index_url(site.public_url, config.slug),
        )
        author = ET.SubElement(feed, f"{{{ATOM}}}author")
        sub(author, "name", site.name)
        sub(author, "uri", site.url)
        for issue, entry in zip(issues, entries, strict=True):
            item = ET.SubElement(feed, f"{{{ATOM}}}entry")
            sub(item, "id", entry.url)
            sub(item, "title", f"{config.name} · Issue {entry.number}")
            sub(item, "updated", entry.sent_at.isoformat())
            sub(item, "published", entry.sent_at.isoformat())
            sub(item, "link", rel="alternate", type="text/html", href=entry.url)
            lines = [
                f"{s.topic.name}: " + "; ".join(p.post.title for p in s.posts)
                for s in issue.sections
            ]
            sub(item, "summary", "\n".join(lines))
        return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
