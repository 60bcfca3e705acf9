"""Use cases of the editor app: the dashboard and history, one issue's page with its segments
and preflight, and the actions on it (logging in and sessions are :mod:`digest.app.editors`').
Sync code over the stores, the stages and the preflight checks; the web face calls it in a
worker thread."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from digest.app import feedback, previews, sending
from digest.app import issues as issue_cases
from digest.app.engagement import IssueEngagement, issue_engagement
from digest.app.images import IMAGES_ROUTE
from digest.app.issues import Figures, Planned, figures
from digest.app.previews import sample_values
from digest.app.scheduled import WaveView, slot_waves
from digest.app.wiring import Project
from digest.config import DigestConfig
from digest.errors import DigestError
from digest.lifecycle import why_not_editable
from digest.models import Issue, Owed, Topic, TopicSet
from digest.personalize import compile_template
from digest.render import RenderedIssue
from digest.render.features import load_unsupported
from digest.render.preflight import Report, preflight
from digest.schedule import cron_trigger
from digest.schedule.waves import wall_time
from digest.stores import issue_posts, issues
from digest.stores.editors import Editor as Editor  # the web face names a logged-in editor
from digest.stores.editors import editor_key as editor_key  # failed logins count per account
from digest.stores.issue_posts import Entry
from digest.stores.issues import IssueRow, ScheduleLogRow
from subscribers.models import Status
from subscribers.store import SubscriberStore

FILES_ROUTE = "/editor/files/"
FILE_URL = re.compile(r"file://[^\s\"'<>()]+")
PUBLISHED_URL = re.compile(r"https?://[^\s\"'<>()]+/images/[0-9a-f]{24}\.[a-z]+")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".avif"})
SEGMENT_SEPARATORS = re.compile(r"[+\s,]+")
"""``?segment=backend+data`` arrives as "backend data" when typed by hand, as "backend+data"
when a link encodes it: both mean the same segment."""


def next_slot(digest: DigestConfig, now: datetime) -> datetime | None:
    """The next scheduled moment of the digest, in its time zone (None: the cron never fires);
    with ``local_delivery``, its first possible wave (:mod:`digest.schedule.waves`)."""
    trigger = cron_trigger(digest)
    # Strictly after now: the slot of this very second is being run, not coming.
    after = now.astimezone(digest.zone) + timedelta(seconds=1)
    fire: datetime | None = trigger.get_next_fire_time(None, after)
    return fire


def segment_param(issue: Issue, key: Owed | TopicSet) -> str:
    owed = Owed.of(key)
    topics = "+".join(s for s in issue.topic_slugs if s in owed.topics)
    return topics if owed.since is None else f"{topics}@{owed.since}"


def segment_label(
    issue: Issue, key: Owed | TopicSet, ended: Mapping[int, int] | None = None
) -> str:
    """The topics, and for readers who switched cadence what they are owed since: the issue
    they were last sent, when ``ended`` (release → issue number) knows it, else the release."""
    owed = Owed.of(key)
    names = " + ".join(s.topic.name for s in issue.sections if s.topic.slug in owed.topics)
    if owed.since is None:
        return names
    number = (ended or {}).get(owed.since)
    since = f"issue {number}" if number else f"release {owed.since}"
    return f"{names} · switched cadence, owed since {since}"


@dataclass(frozen=True)
class DigestCard:
    digest: DigestConfig
    next_slot: datetime | None
    upcoming: IssueRow | None
    upcoming_posts: int
    last_sent: IssueRow | None
    figures: Figures | None
    engagement: IssueEngagement | None = None
    waves: tuple[WaveView, ...] = ()
    """With ``local_delivery``: the waves of the slot being sent, or of the next slot."""
    waves_slot: datetime | None = None
    """The slot ``waves`` belong to."""

    @property
    def waves_wall(self) -> datetime | None:
        """The wall time ``waves_slot`` names (in each reader's zone)."""
        return wall_time(self.waves_slot) if self.waves_slot else None

    @property
    def next_wall(self) -> datetime | None:
        """With ``local_delivery``: the wall time of the next slot."""
        return wall_time(self.next_slot) if self.next_slot else None


@dataclass(frozen=True)
class DigestHistory:
    """A digest's issues with their figures, and what the scheduler did with its last slots
    (a missed or skipped slot shows here, not only in a log file)."""

    digest: DigestConfig
    issues: list[tuple[IssueRow, Figures]]
    runs: list[ScheduleLogRow]


@dataclass(frozen=True)
class SegmentRow:
    key: Owed
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

    key: Owed
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
    row: IssueRow
    issue: Issue
    digest: DigestConfig
    topics: list[tuple[Topic, list[Entry]]]
    segments: list[SegmentRow]
    shown: Shown | None
    problem: str | None
    locked: str | None
    upcoming: bool
    figures: Figures
    engagement: IssueEngagement | None = None


class Editorial:
    """The editor-facing use cases of one project, with its email-client support table
    (``[editor] caniemail_csv``) loaded once."""

    def __init__(self, project: Project) -> None:
        self.project = project
        editor = project.config.file.editor
        self.unsupported = (
            load_unsupported(project.config.resolve_path(editor.caniemail_csv))
            if editor.caniemail_csv
            else None
        )

    # local files ---------------------------------------------------------------------------

    def local_url(self, url: str) -> str:
        """A ``file:`` URL under the project folder (the example site's images) as a URL the
        editor's browser can load; browsers refuse ``file:`` images on http(s) pages. Any
        other URL is returned as it is."""
        published = self.project.images().url_base
        if url.startswith(published) and published.startswith(self.project.config.site.public_url):
            return IMAGES_ROUTE + url[len(published) :]  # served by this app, wherever it runs
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return url
        base = self.project.config.base_dir.resolve()
        path = Path(unquote(parts.path))
        if not path.is_relative_to(base):
            return url
        return FILES_ROUTE + quote(path.relative_to(base).as_posix())

    def localize(self, html: str) -> str:
        html = PUBLISHED_URL.sub(lambda m: self.local_url(m.group(0)), html)
        return FILE_URL.sub(lambda m: self.local_url(m.group(0)), html)

    def local_file(self, relative: str) -> Path | None:
        """The image a ``/editor/files/…`` URL names: only images, only inside the project."""
        base = self.project.config.base_dir.resolve()
        path = (base / unquote(relative)).resolve()
        if not path.is_relative_to(base) or path.suffix.lower() not in IMAGE_SUFFIXES:
            return None
        return path if path.is_file() else None

    def _names(self, digest: DigestConfig) -> dict[str, str]:
        return {topic.slug: topic.name for topic in self.project.topics(digest)}

    # dashboard and history ---------------------------------------------------------------

    def dashboard(self) -> list[DigestCard]:
        feedback.drain(self.project)  # the figures count every event answered for
        now = self.project.clock()
        cards = []
        with self.project.reading() as conn:
            for digest in self.project.config.digests:
                upcoming = issues.unfinished_issue(conn, digest.slug)
                posts = 0
                if upcoming is not None:
                    posts = len({e.post_id for e in issue_posts.entries(conn, upcoming.id)})
                last = issues.last_sent(conn, digest.slug)
                coming = next_slot(digest, now)
                waves_slot = upcoming.slot if upcoming is not None and upcoming.slot else coming
                shown: tuple[WaveView, ...] = ()
                if digest.local_delivery and waves_slot is not None:
                    cadence = upcoming.cadence if upcoming is not None else None
                    shown = tuple(slot_waves(self.project, digest.slug, waves_slot, cadence))
                cards.append(
                    DigestCard(
                        digest,
                        coming,
                        upcoming,
                        posts,
                        last,
                        figures(conn, last.id) if last else None,
                        issue_engagement(conn, last, self._names(digest)) if last else None,
                        shown,
                        waves_slot if shown else None,
                    )
                )
        return cards

    def history(self, digest_slug: str | None) -> list[DigestHistory]:
        digests = (
            [self.project.config.digest(digest_slug)]
            if digest_slug
            else self.project.config.digests
        )
        feedback.drain(self.project)
        out = []
        with self.project.reading() as conn:
            for digest in digests:
                rows = issues.issues_of(conn, digest.slug)
                out.append(
                    DigestHistory(
                        digest,
                        [(row, figures(conn, row.id)) for row in rows],
                        issues.schedule_log(conn, digest.slug, limit=10),
                    )
                )
        return out

    # one issue ---------------------------------------------------------------------------

    def row(self, issue_id: int) -> IssueRow | None:
        return issue_cases.row(self.project, issue_id)

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
            with self.project.reading() as conn:
                reader = SubscriberStore(conn).get(as_email.strip())
            if reader is None:
                raise DigestError("is not a subscriber", where=as_email)
            key = Owed(reader.topics & frozenset(issue.topic_slugs))
            if reader.status is not Status.ACTIVE or reader.paused(self.project.clock()):
                raise DigestError(
                    f"gets nothing at the moment (status {reader.status.value}"
                    f"{', paused' if reader.paused(self.project.clock()) else ''})",
                    where=reader.email,
                )
            if not key.topics:
                raise DigestError("gets nothing from this issue", where=reader.email)
            values = sample_values(
                public_url, issue.topic_slugs, reader.first_name or "there", reader.email
            )
        elif segment:
            named, at, since = segment.partition("@")
            topics = frozenset(s for s in SEGMENT_SEPARATORS.split(named) if s)
            unknown = topics - frozenset(issue.topic_slugs)
            if unknown or not topics or (at and not since.strip().isdigit()):
                raise DigestError(
                    f"no such segment: {', '.join(sorted(unknown)) or segment or '(empty)'} "
                    f"(this issue has {', '.join(issue.topic_slugs)})"
                )
            key = Owed(topics, int(since) if at else None)
        else:
            key = Owed(frozenset(issue.topic_slugs))
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
        feedback.drain(project)
        with project.reading() as conn:
            row = issues.issue_row(conn, issue_id)
            digest = project.config.digest(row.digest)
            issue = issues.load_issue(conn, issue_id, project.topics(digest))
            entries = issue_posts.entries(conn, issue_id)
            upcoming = issues.unfinished_issue(conn, digest.slug)
            issue_figures = figures(conn, issue_id)
            sent = row.sent_at is not None or row.status == "sending"
            engaged = issue_engagement(conn, row, self._names(digest)) if sent else None
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
            rows = self._segment_rows(issue, rendered)
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
            locked=why_not_editable(row.status, row.approval),
            upcoming=upcoming is not None and upcoming.id == issue_id,
            figures=issue_figures,
            engagement=engaged,
        )

    def _segment_rows(self, issue: Issue, rendered: RenderedIssue) -> list[SegmentRow]:
        """Each segment's readers, size, trimming and preflight counts, largest first."""
        sample = sample_values(self.project.config.site.public_url, issue.topic_slugs)
        names = {s.topic.slug: s.topic.name for s in issue.sections}
        rows = []
        counted = issue_cases.segments(self.project, issue)
        with self.project.reading() as conn:
            ended = issues.issues_ending_at(
                conn, issue.digest, [k.since for k in counted if k.since is not None]
            )
        for key, readers in counted.items():
            variant = rendered.variant(key)
            html = compile_template(variant.html).fill(sample)
            report = preflight(html, rendered.budget, self.unsupported)
            rows.append(
                SegmentRow(
                    key,
                    segment_param(issue, key),
                    segment_label(issue, key, ended),
                    readers,
                    f"{report.html_bytes / 1024:.0f}",
                    ", ".join(f"{names[s]} −{n}" for s, n in variant.trimmed.items()),
                    len(report.errors),
                    len(report.warnings),
                )
            )
        return rows

    def preview(self, issue_id: int, segment: str | None, as_email: str | None) -> Shown | None:
        return self.choose(issue_cases.load(self.project, issue_id), segment, as_email)

    # actions -----------------------------------------------------------------------------

    def plan(self, digest_slug: str) -> Planned | None:
        return issue_cases.plan(self.project, digest_slug)

    def set_note(self, issue_id: int, note: str) -> None:
        issue_cases.set_note(self.project, issue_id, note)

    def edit(self, issue_id: int, action: str, post_id: int, topic: str) -> None:
        issue_cases.edit(self.project, issue_id, action, post_id, topic)

    def decide(self, issue_id: int, action: str, editor: Editor, note: str | None) -> str | None:
        """Record approve / hold / skip (or approve for sending now); the digest to send now,
        if any."""
        return issue_cases.decide(self.project, issue_id, action, editor.email, note)

    def send_now(self, digest_slug: str) -> None:
        """Send the digest's next issue (the one just approved); resumable like `digest send`."""
        sending.send_now(self.project, digest_slug)

    def resendable(self, issue_id: int) -> tuple[str, int]:
        """The digest and number of the issue, checked to be one whose ambiguous deliveries
        can be sent again (DigestError with why not)."""
        row = issue_cases.row(self.project, issue_id)
        if row is None:
            raise DigestError("no such issue")
        checked = sending.resendable(self.project, row.digest, row.number)
        return checked.digest, checked.number

    def resend_ambiguous(self, digest_slug: str, number: int) -> None:
        """Send the issue's ambiguous deliveries again, closed or not: what
        `digest send --resend-ambiguous --issue N` does."""
        sending.resend_ambiguous(self.project, digest_slug, number)

    def send_test(self, issue_id: int, to: str, segment: str | None, as_email: str | None) -> str:
        issue = issue_cases.load(self.project, issue_id)
        shown = self.choose(issue, segment, as_email)
        if shown is None:
            raise DigestError("this issue has no posts left to send")
        _, _, subject = previews.send_test(
            self.project, to, issue.digest, segment=shown.key, as_email=shown.as_email, issue=issue
        )
        return subject
