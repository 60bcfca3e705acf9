"""What the editor pages do, apart from HTTP: sync code over the store, the pipeline and the
preflight checks, called from :mod:`digest.web.editor` in a worker thread."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy.exc import NoResultFound

from digest import editing, repository
from digest.config import DigestConfig
from digest.editing import Entry, Figures
from digest.editors import Editor, EditorStore, authenticate
from digest.errors import DigestError
from digest.models import Issue, Topic, TopicSet
from digest.personalize import compile_template
from digest.pipeline import Planned, Project, sample_values
from digest.render import RenderedIssue
from digest.render.features import load_unsupported
from digest.render.preflight import Report, preflight
from digest.schedule import cron_trigger
from subscribers.models import Status
from subscribers.store import SubscriberStore

FILES_ROUTE = "/editor/files/"
FILE_URL = re.compile(r"file://[^\s\"'<>()]+")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".avif"})
SEGMENT_SEPARATORS = re.compile(r"[+\s,]+")
"""``?segment=backend+data`` arrives as "backend data" when typed by hand, as "backend+data"
when a link encodes it: both mean the same segment."""


def next_slot(digest: DigestConfig, now: datetime) -> datetime | None:
    """The next scheduled moment of the digest, in its time zone (None: the cron never fires)."""
    trigger = cron_trigger(digest)
    # Strictly after now: the slot of this very second is being run, not coming.
    after = now.astimezone(digest.zone) + timedelta(seconds=1)
    fire: datetime | None = trigger.get_next_fire_time(None, after)
    return fire


def segment_param(issue: Issue, key: TopicSet) -> str:
    return "+".join(s for s in issue.topic_slugs if s in key)


def segment_label(issue: Issue, key: TopicSet) -> str:
    return " + ".join(s.topic.name for s in issue.sections if s.topic.slug in key)


@dataclass(frozen=True)
class DigestCard:
    digest: DigestConfig
    next_slot: datetime | None
    upcoming: repository.IssueRow | None
    upcoming_posts: int
    last_sent: repository.IssueRow | None
    figures: Figures | None


@dataclass(frozen=True)
class DigestHistory:
    """A digest's issues with their figures, and what the scheduler did with its last slots
    (a missed or skipped slot shows here, not only in a log file)."""

    digest: DigestConfig
    issues: list[tuple[repository.IssueRow, Figures]]
    runs: list[repository.ScheduleLogRow]


@dataclass(frozen=True)
class SegmentRow:
    key: TopicSet
    param: str
    label: str
    readers: int
    kib: str
    trimmed: str
    errors: int
    warnings: int


@dataclass(frozen=True)
class Shown:
    """The variant on screen: one segment, or what one subscriber would get."""

    key: TopicSet
    param: str
    label: str
    as_email: str | None
    subject: str
    html: str
    text: str
    trimmed: dict[str, int]
    report: Report


@dataclass(frozen=True)
class IssuePage:
    row: repository.IssueRow
    issue: Issue
    digest: DigestConfig
    topics: list[tuple[Topic, list[Entry]]]
    segments: list[SegmentRow]
    shown: Shown | None
    problem: str | None
    locked: str | None
    upcoming: bool
    figures: Figures


class EditorPages:
    def __init__(self, project: Project) -> None:
        self.project = project
        editor = project.config.file.editor
        self.unsupported = (
            load_unsupported(project.config.resolve_path(editor.caniemail_csv))
            if editor.caniemail_csv
            else None
        )

    # accounts ----------------------------------------------------------------------------

    def login(self, email: str, password: str) -> Editor | None:
        with self.project.engine.begin() as conn:
            store = EditorStore(conn, self.project.config.file.editor.users)
            editor = authenticate(store, email, password)
            if editor is not None:
                store.logged_in(editor, password, self.project.clock())
                editor = store.get(editor.email)
        return editor

    def editor(self, email: str) -> Editor | None:
        with self.project.engine.connect() as conn:
            return EditorStore(conn, self.project.config.file.editor.users).get(email)

    # local files ---------------------------------------------------------------------------

    def local_url(self, url: str) -> str:
        """A ``file:`` URL under the project folder (the example site's images) as a URL the
        editor's browser can load; browsers refuse ``file:`` images on http(s) pages. Any
        other URL is returned as it is."""
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return url
        base = self.project.config.base_dir.resolve()
        path = Path(unquote(parts.path))
        if not path.is_relative_to(base):
            return url
        return FILES_ROUTE + quote(path.relative_to(base).as_posix())

    def localize(self, html: str) -> str:
        return FILE_URL.sub(lambda m: self.local_url(m.group(0)), html)

    def local_file(self, relative: str) -> Path | None:
        """The image a ``/editor/files/…`` URL names: only images, only inside the project."""
        base = self.project.config.base_dir.resolve()
        path = (base / unquote(relative)).resolve()
        if not path.is_relative_to(base) or path.suffix.lower() not in IMAGE_SUFFIXES:
            return None
        return path if path.is_file() else None

    # dashboard and history ---------------------------------------------------------------

    def dashboard(self) -> list[DigestCard]:
        now = self.project.clock()
        cards = []
        with self.project.engine.connect() as conn:
            for digest in self.project.config.digests:
                upcoming = repository.unfinished_issue(conn, digest.slug)
                posts = 0
                if upcoming is not None:
                    posts = len({e.post_id for e in editing.entries(conn, upcoming.id)})
                last = editing.last_sent(conn, digest.slug)
                cards.append(
                    DigestCard(
                        digest,
                        next_slot(digest, now),
                        upcoming,
                        posts,
                        last,
                        editing.figures(conn, last.id) if last else None,
                    )
                )
        return cards

    def history(self, digest_slug: str | None) -> list[DigestHistory]:
        digests = (
            [self.project.config.digest(digest_slug)]
            if digest_slug
            else self.project.config.digests
        )
        out = []
        with self.project.engine.connect() as conn:
            for digest in digests:
                rows = editing.issues_of(conn, digest.slug)
                out.append(
                    DigestHistory(
                        digest,
                        [(row, editing.figures(conn, row.id)) for row in rows],
                        repository.schedule_log(conn, digest.slug, limit=10),
                    )
                )
        return out

    # one issue ---------------------------------------------------------------------------

    def row(self, issue_id: int) -> repository.IssueRow | None:
        with self.project.engine.connect() as conn:
            try:
                return repository.issue_row(conn, issue_id)
            except NoResultFound:
                return None

    def choose(self, issue: Issue, segment: str | None, as_email: str | None) -> Shown | None:
        """The variant a ``segment`` parameter or a subscriber's address selects (default: every
        topic of the issue), rendered and checked; DigestError when it selects nothing, None
        when every post was left out."""
        return self._shown(issue, self.project.render(issue), segment, as_email)

    def _shown(
        self,
        issue: Issue,
        rendered: RenderedIssue,
        segment: str | None,
        as_email: str | None,
    ) -> Shown | None:
        if not issue.sections:
            return None
        public_url = self.project.config.site.public_url
        values = sample_values(public_url, issue.topic_slugs)
        if as_email:
            with self.project.engine.connect() as conn:
                reader = SubscriberStore(conn).get(as_email.strip())
            if reader is None:
                raise DigestError("is not a subscriber", where=as_email)
            key = reader.topics & frozenset(issue.topic_slugs)
            if reader.status is not Status.ACTIVE or reader.paused(self.project.clock()):
                raise DigestError(
                    f"gets nothing at the moment (status {reader.status.value}"
                    f"{', paused' if reader.paused(self.project.clock()) else ''})",
                    where=reader.email,
                )
            if not key:
                raise DigestError("gets nothing from this issue", where=reader.email)
            values = sample_values(
                public_url, issue.topic_slugs, reader.first_name or "there", reader.email
            )
        elif segment:
            key = frozenset(s for s in SEGMENT_SEPARATORS.split(segment) if s)
            unknown = key - frozenset(issue.topic_slugs)
            if unknown or not key:
                raise DigestError(
                    f"no such segment: {', '.join(sorted(unknown)) or '(empty)'} "
                    f"(this issue has {', '.join(issue.topic_slugs)})"
                )
        else:
            key = frozenset(issue.topic_slugs)
        variant = rendered.variant(key)
        html = compile_template(variant.html).fill(values)
        return Shown(
            key=key,
            param=segment_param(issue, key),
            label=segment_label(issue, key),
            as_email=as_email.strip() if as_email else None,
            subject=compile_template(variant.subject).fill(values),
            html=html,
            text=compile_template(variant.text).fill(values),
            trimmed=variant.trimmed,
            report=preflight(html, rendered.budget, self.unsupported),
        )

    def issue_page(self, issue_id: int, segment: str | None, as_email: str | None) -> IssuePage:
        project = self.project
        with project.engine.connect() as conn:
            row = repository.issue_row(conn, issue_id)
            digest = project.config.digest(row.digest)
            issue = repository.load_issue(conn, issue_id, project.topics(digest))
            entries = editing.entries(conn, issue_id)
            upcoming = repository.unfinished_issue(conn, digest.slug)
            figures = editing.figures(conn, issue_id)
        topics = [
            (topic, [e for e in entries if e.topic == topic.slug])
            for topic in project.topics(digest)
            if any(e.topic == topic.slug for e in entries)
        ]
        rendered = project.render(issue) if issue.sections else None
        rows: list[SegmentRow] = []
        shown: Shown | None = None
        problem: str | None = None
        if rendered is not None:
            sample = sample_values(project.config.site.public_url, issue.topic_slugs)
            for key, readers in project.segments(issue).items():
                variant = rendered.variant(key)
                html = compile_template(variant.html).fill(sample)
                report = preflight(html, rendered.budget, self.unsupported)
                names = {s.topic.slug: s.topic.name for s in issue.sections}
                rows.append(
                    SegmentRow(
                        key,
                        segment_param(issue, key),
                        segment_label(issue, key),
                        readers,
                        f"{report.html_bytes / 1024:.0f}",
                        ", ".join(f"{names[s]} −{n}" for s, n in variant.trimmed.items()),
                        len(report.errors),
                        len(report.warnings),
                    )
                )
            if not segment and not as_email and rows:
                segment = rows[0].param  # the most readers: what most of them will get
            try:
                shown = self._shown(issue, rendered, segment, as_email)
            except DigestError as err:
                problem = str(err)
                shown = self._shown(issue, rendered, None, None)
        return IssuePage(
            row=row,
            issue=issue,
            digest=digest,
            topics=topics,
            segments=rows,
            shown=shown,
            problem=problem,
            locked=editing.editable(row),
            upcoming=upcoming is not None and upcoming.id == issue_id,
            figures=figures,
        )

    def preview(self, issue_id: int, segment: str | None, as_email: str | None) -> Shown | None:
        return self.choose(self.project.issue(issue_id), segment, as_email)

    # actions -----------------------------------------------------------------------------

    def plan(self, digest_slug: str) -> Planned | None:
        return self.project.plan(digest_slug)

    def edit(self, issue_id: int, action: str, post_id: int, topic: str) -> None:
        with self.project.engine.begin() as conn:
            if action in ("exclude", "include"):
                editing.set_excluded(conn, issue_id, post_id, action == "exclude")
            elif action in ("up", "down"):
                editing.move(conn, issue_id, topic, post_id, -1 if action == "up" else 1)
            else:
                raise DigestError(f"unknown action {action!r}")

    def decide(self, issue_id: int, action: str, editor: Editor, note: str | None) -> str | None:
        """Record approve / hold / skip (or approve for sending now); the digest to send now,
        if any. Only the digest's next unsent issue can be sent now."""
        approval = {
            "approve": "approved",
            "send-now": "approved",
            "hold": "held",
            "skip": "skipped",
        }.get(action)
        if approval is None:
            raise DigestError(f"unknown action {action!r}")
        with self.project.engine.begin() as conn:
            row = repository.issue_row(conn, issue_id)
            if row.status in (repository.ISSUE_SENT, repository.ISSUE_SENDING):
                raise DigestError("this issue is already being sent or was sent")
            if row.status == repository.ISSUE_SKIPPED:
                raise DigestError("this issue was skipped")
            if action == "send-now":
                upcoming = repository.unfinished_issue(conn, row.digest)
                if upcoming is None or upcoming.id != issue_id:
                    raise DigestError("only the digest's next issue can be sent now")
            repository.set_approval(
                conn, issue_id, approval, editor.email, self.project.clock(), note or None
            )
        return row.digest if action == "send-now" else None

    def send_now(self, digest_slug: str) -> None:
        """Send the digest's next issue (the one just approved); resumable like `digest send`."""
        self.project.send(digest_slug)

    def send_test(self, issue_id: int, to: str, segment: str | None, as_email: str | None) -> str:
        issue = self.project.issue(issue_id)
        shown = self.choose(issue, segment, as_email)
        if shown is None:
            raise DigestError("this issue has no posts left to send")
        _, _, subject = self.project.send_test(
            to, issue.digest, segment=shown.key, as_email=shown.as_email, issue=issue
        )
        return subject
