"""The stages wired to their adapters: the small Python API that the CLI and the scheduler wrap.

    project = Project.open(load_config("digest.toml"))
    project.gather()
    planned = project.plan("weekly")
    project.preview("weekly", Path("preview"))
    project.send("weekly")

Adapters (database engine, clock, HTTP client, transport) are passed in or built from the
config here, and nowhere else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from functools import cached_property, partial
from pathlib import Path

import httpx
from jinja2 import Environment
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from digest import db, repository
from digest.config import SENDGRID_KEY_ENV, Config, DigestConfig
from digest.errors import ApprovalError, DigestError, SecretMissing
from digest.gather import (
    GatherReport,
    GatherSettings,
    SourceJob,
    SourceOutcome,
    collect,
    gather,
    settings_from,
    source_jobs,
)
from digest.gather.fetch import FetchLimits, SourceFetcher, Validators, http_client
from digest.gather.topics import TopicMapping
from digest.models import Issue, Post, Topic, TopicSet
from digest.personalize import compile_template, token_values
from digest.plan import LATE_POST_WINDOW, plan_issue
from digest.render import EmailContext, RenderedIssue, Theme, render_issue
from digest.render.environment import make_environment
from digest.render.layout import post_count
from digest.render.size import HTML_BUDGET_BYTES, html_bytes
from digest.segment import decode_key, segment_members
from digest.send import reporting
from digest.send.message import Envelope, compose, list_id
from digest.send.outbox import OutboxTransport
from digest.send.sender import Links
from digest.send.sendgrid import SendGridOptions, SendGridTransport
from digest.send.smtp import SmtpTransport
from digest.send.transport import Transport
from digest.send.worker import AmbiguousPolicy, SendReport, send_issue
from subscribers.store import SubscriberStore
from subscribers.tokens import TokenSigner

Clock = Callable[[], datetime]
PREVIEW_INDEX = "web/preview_index.html.j2"


def utc_now() -> datetime:
    return datetime.now(UTC)


def fetch_limits(config: Config | None) -> FetchLimits:
    if config is None:
        return FetchLimits()
    g = config.gather
    return FetchLimits(g.timeout_seconds, g.max_bytes, g.max_redirects, g.retries, g.user_agent)


def inspect_source(
    location: str,
    kind: str = "auto",
    config: Config | None = None,
    clock: Clock = utc_now,
    client: httpx.Client | None = None,
) -> tuple[SourceOutcome, list[Post]]:
    """Read one source exactly as gather would, store nothing.

    A source named in the config keeps its topic mapping; any other source has its posts'
    categories mapped to the config's topics (or shown as they are, without a config).
    """
    settings = settings_from(config) if config else GatherSettings()
    job = _job_for(location, kind, config)
    limits = fetch_limits(config)
    owned = client is None
    client = client or http_client(limits)
    try:
        outcome, posts, _ = collect(
            job, SourceFetcher(client, limits), Validators(), settings, clock()
        )
    finally:
        if owned:
            client.close()
    return outcome, posts


def _job_for(location: str, kind: str, config: Config | None) -> SourceJob:
    if config is not None:
        for job in source_jobs(config):
            if job.location == location:
                return replace(job, kind=kind if kind != "auto" else job.kind)
        names = [(t.slug, t.name) for t in config.topics]
        return SourceJob(location, location, TopicMapping.by_category(names, {}), kind)
    return SourceJob(location, location, TopicMapping(keep_categories=True), kind)


@dataclass(frozen=True)
class Planned:
    """The issue waiting to be sent (just planned, or planned earlier and not finished)."""

    issue: Issue
    created: bool
    count_segments: Callable[[], dict[TopicSet, int]] = field(repr=False, compare=False)
    """Counted on first use: at a million readers counting takes seconds, and sending
    (which segments as it records) does not need the count."""
    approval: str = repository.APPROVAL_NONE
    """The editor gate (see :mod:`digest.repository`): none, pending, approved, held."""
    slot: datetime | None = None

    @cached_property
    def segments(self) -> dict[TopicSet, int]:
        return self.count_segments()

    @property
    def recipients(self) -> int:
        return sum(self.segments.values())


@dataclass(frozen=True)
class PreviewResult:
    folder: Path
    index: Path
    files: dict[TopicSet, Path]
    html_bytes: dict[TopicSet, int]
    trimmed: dict[TopicSet, dict[str, int]]

    @property
    def over_budget(self) -> dict[TopicSet, int]:
        return {k: n for k, n in self.html_bytes.items() if n > HTML_BUDGET_BYTES}


@dataclass(frozen=True)
class RunResult:
    gathered: GatherReport
    planned: Planned | None
    sent: SendReport | None


class Project:
    def __init__(self, config: Config, engine: Engine, clock: Clock = utc_now) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock

    @classmethod
    def open(cls, config: Config, clock: Clock = utc_now, engine: Engine | None = None) -> Project:
        """Connect and bring the schema up to date (migrations run on every open; cheap)."""
        engine = engine or db.make_engine(config.database_url)
        db.upgrade(engine)
        project = cls(config, engine, clock)
        with engine.begin() as conn:
            repository.sync_topics(conn, project.topics())
        return project

    def topics(self, digest: DigestConfig | None = None) -> list[Topic]:
        chosen = self.config.digest_topics(digest) if digest else self.config.topics
        return [Topic(t.slug, t.name) for t in chosen]

    # gather ---------------------------------------------------------------------------------

    def gather(
        self,
        client: httpx.Client | None = None,
        on_source: Callable[[SourceOutcome], None] | None = None,
    ) -> GatherReport:
        limits = fetch_limits(self.config)
        owned = client is None
        client = client or http_client(limits)
        try:
            fetcher = SourceFetcher(client, limits)
            return gather(self.config, self.engine, fetcher, self.clock(), on_source)
        finally:
            if owned:
                client.close()

    # plan -----------------------------------------------------------------------------------

    def plan(
        self,
        digest_slug: str | None = None,
        save: bool = True,
        slot: datetime | None = None,
        approval: str = repository.APPROVAL_NONE,
    ) -> Planned | None:
        """The issue made for ``slot`` if there is one, else the unfinished issue of the
        digest, else a newly planned one (stored with ``slot`` and ``approval``), else None.

        ``slot`` makes planning idempotent per scheduled run: the unique (digest, slot)
        constraint means a second scheduler, or a rerun of the slot, gets the same issue back.
        ``save`` False plans without storing anything (``digest send --dry-run``)."""
        digest = self.config.digest(digest_slug)
        topics = self.topics(digest)
        now = self.clock()
        with self.engine.begin() as conn:
            found = repository.issue_for_slot(conn, digest.slug, slot) if slot else None
            found = found or repository.unfinished_issue(conn, digest.slug)
            if found is not None:
                issue = repository.load_issue(conn, found.id, topics)
                return Planned(
                    issue, False, partial(self.segments, issue), found.approval, found.slot
                )
            last = repository.last_issue(conn, digest.slug)
            since = last.cutoff - LATE_POST_WINDOW if last else None
            candidates = repository.candidate_posts(conn, [t.slug for t in topics], since, now)
            planned = plan_issue(
                digest=digest.slug,
                topics=topics,
                candidates=candidates,
                already_sent=repository.posts_in_issues(conn, digest.slug),
                last_number=repository.last_number(conn, digest.slug),
                last_cutoff=last.cutoff if last else None,
                max_posts_per_topic=digest.max_posts_per_topic,
                now=now,
            )
            if planned is None:
                return None
            if not save:
                return Planned(planned, True, partial(self.segments, planned), approval, slot)
            try:
                with conn.begin_nested():
                    issue = repository.save_issue(
                        conn, planned, repository.topic_ids(conn), now, slot, approval
                    )
            except IntegrityError:
                # Another process planned this slot (or this number) first: theirs stands.
                pass
            else:
                return Planned(issue, True, partial(self.segments, issue), approval, slot)
        if slot is None:
            raise DigestError("another process planned an issue at the same moment; run again")
        return self.plan(digest_slug, save, slot, approval)

    def unfinished(self, digest_slug: str | None = None) -> Issue | None:
        digest = self.config.digest(digest_slug)
        with self.engine.connect() as conn:
            row = repository.unfinished_issue(conn, digest.slug)
            return repository.load_issue(conn, row.id, self.topics(digest)) if row else None

    def issue(self, issue_id: int) -> Issue:
        with self.engine.connect() as conn:
            digest = repository.issue_row(conn, issue_id).digest
            return repository.load_issue(conn, issue_id, self.topics(self.config.digest(digest)))

    def archive_html(self, issue: Issue, rendered: RenderedIssue | None = None) -> str:
        """The web-archive page: every topic, the links leading to the generic pages."""
        rendered = rendered or self.render(issue)
        generic = sample_values(self.config.site.public_url, issue.topic_slugs, "there")
        html = rendered.variant(frozenset(issue.topic_slugs)).html
        return compile_template(html).fill(generic)

    def latest_issue(self, digest_slug: str | None = None) -> Issue | None:
        digest = self.config.digest(digest_slug)
        with self.engine.connect() as conn:
            last = repository.last_issue(conn, digest.slug)
            return repository.load_issue(conn, last.id, self.topics(digest)) if last else None

    def segments(self, issue: Issue) -> dict[TopicSet, int]:
        """Readers per segment, largest first: as recorded for sending once the issue is
        being sent (cheap, and what it goes out to), else as the subscribers stand now."""
        with self.engine.connect() as conn:
            recorded = reporting.segment_sizes(conn, issue.id) if issue.id is not None else {}
            if recorded:
                sizes = Counter({decode_key(key): n for key, n in recorded.items()})
            else:
                members = segment_members(conn, issue.topic_slugs, self.clock())
                sizes = Counter(key for _, key in members)
        order = {slug: i for i, slug in enumerate(issue.topic_slugs)}
        return dict(sorted(sizes.items(), key=lambda kv: (-kv[1], sorted(order[s] for s in kv[0]))))

    # render ---------------------------------------------------------------------------------

    def email_context(self, digest: DigestConfig, issue_number: int) -> EmailContext:
        site = self.config.site
        theme = self.config.file.theme
        return EmailContext(
            site_name=site.name,
            site_url=site.url,
            postal_address=site.postal_address,
            digest_name=digest.name,
            timezone=digest.timezone,
            logo_url=self.config.logo_url(),
            language=site.language,
            theme=Theme(
                theme.brand, theme.accent, theme.text, theme.muted, theme.background, theme.font
            ),
            archive_url=archive_url(site.public_url, digest.slug, issue_number),
            topic_urls={t.slug: t.url or site.url for t in self.config.topics},
            subject_template=digest.subject,
            preheader_template=digest.preheader,
        )

    def environment(self) -> Environment:
        folder = self.config.site.templates
        return make_environment(self.config.resolve_path(folder) if folder else None)

    def render(self, issue: Issue) -> RenderedIssue:
        digest = self.config.digest(issue.digest)
        return render_issue(issue, self.email_context(digest, issue.number), self.environment())

    def preview(
        self, digest_slug: str | None, folder: Path, issue: Issue | None = None
    ) -> PreviewResult:
        """One HTML file per segment of the issue (as its readers will get it, tokens filled with
        sample values), the issue's web-archive page (``archive.html``, every topic, no personal
        links: what "view in browser" serves) and an index.html linking them."""
        segments: dict[TopicSet, int] | None = None
        if issue is None:
            planned = self.plan(digest_slug)
            if planned is not None:
                issue, segments = planned.issue, planned.segments
            else:
                issue = self.latest_issue(digest_slug)
        if issue is None:
            raise DigestError("no issue to preview: nothing new has been gathered yet")
        rendered = self.render(issue)
        if segments is None:
            segments = self.segments(issue)
        target = folder / issue.digest / f"issue-{issue.number:04d}"
        target.mkdir(parents=True, exist_ok=True)
        files: dict[TopicSet, Path] = {}
        sizes: dict[TopicSet, int] = {}
        trimmed: dict[TopicSet, dict[str, int]] = {}
        sample = sample_values(self.config.site.public_url, issue.topic_slugs)
        keys = list(segments) or [frozenset(issue.topic_slugs)]
        for key in keys:
            variant = rendered.variant(key)
            name = "segment-" + "+".join(s for s in issue.topic_slugs if s in key) + ".html"
            path = target / name
            path.write_text(compile_template(variant.html).fill(sample), encoding="utf-8")
            files[key] = path
            sizes[key] = html_bytes(variant.html)
            trimmed[key] = variant.trimmed
        (target / "archive.html").write_text(self.archive_html(issue, rendered), encoding="utf-8")
        index = target / "index.html"
        index.write_text(
            _preview_index(rendered, files, segments, sizes, trimmed), encoding="utf-8"
        )
        return PreviewResult(target, index, files, sizes, trimmed)

    # send -----------------------------------------------------------------------------------

    def transport(self, issue: Issue | None) -> Transport:
        """The configured transport; ``issue`` None is for single messages (confirmations)."""
        sending = self.config.sending
        if sending.transport == "outbox":
            folder = (
                self.config.outbox_dir / "messages"
                if issue is None
                else OutboxTransport.issue_folder(
                    self.config.outbox_dir, issue.digest, issue.number
                )
            )
            return OutboxTransport(folder, self.clock)
        if sending.transport == "smtp":
            return SmtpTransport(sending.smtp, self.config.secrets.smtp_password, self.clock)
        return self.sendgrid()

    def sendgrid(self) -> SendGridTransport:
        secrets = self.config.secrets
        if not secrets.sendgrid_api_key:
            raise SecretMissing(
                f"{SENDGRID_KEY_ENV} is not set: the sendgrid transport needs an API key with "
                "Mail Send permission"
            )
        settings = self.config.sending.sendgrid
        return SendGridTransport(
            secrets.sendgrid_api_key,
            secrets.sendgrid_api_host or settings.api_host,
            SendGridOptions(settings.asm_group_id, settings.sandbox_mode),
            timeout_seconds=settings.timeout_seconds,
            retries=settings.retries,
        )

    def send(
        self,
        digest_slug: str | None = None,
        transport: Transport | None = None,
        ambiguous_policy: AmbiguousPolicy = "skip",
        on_batch: Callable[[int], None] | None = None,
        force: bool = False,
        by: str = "digest send --force",
    ) -> tuple[Planned | None, SendReport | None]:
        """Send the unfinished issue (planning one if there is none): an editor's explicit act.

        An issue waiting for approval (``pending``) or ``held`` is refused with
        :class:`ApprovalError` unless ``force``: holding exists so that an issue is not sent
        by accident, and a send by hand is exactly such an accident when a colleague holds it.
        ``force`` records the approval (``by``) before sending, so the record says who decided.
        """
        planned = self.plan(digest_slug)
        if planned is None:
            return None, None
        if planned.approval in (repository.APPROVAL_PENDING, repository.APPROVAL_HELD):
            issue = planned.issue
            if not force:
                raise ApprovalError(
                    f"issue {issue.number} of {issue.digest} is {planned.approval}: approve it "
                    "in the editor app, or send it anyway with `digest send --force`",
                    where=issue.digest,
                )
            assert issue.id is not None
            with self.engine.begin() as conn:
                repository.set_approval(
                    conn, issue.id, repository.APPROVAL_APPROVED, by, self.clock()
                )
            planned = replace(planned, approval=repository.APPROVAL_APPROVED)
        return planned, self.deliver(planned, transport, ambiguous_policy, on_batch)

    def deliver(
        self,
        planned: Planned,
        transport: Transport | None = None,
        ambiguous_policy: AmbiguousPolicy = "skip",
        on_batch: Callable[[int], None] | None = None,
    ) -> SendReport:
        """Send (or resume) this issue, no questions asked: callers decide whether it may go
        (``send`` for editors, :func:`digest.schedule.run_slot` through its approval gate)."""
        issue = planned.issue
        digest = self.config.digest(issue.digest)
        sending = self.config.sending
        envelope = Envelope(
            from_name=sending.from_name,
            from_email=sending.from_email,
            reply_to=sending.reply_to,
            list_id=list_id(digest.name, digest.slug, sending.from_email),
            unsubscribe_mailto=sending.unsubscribe_mailto,
        )
        links = Links(self.config.site.public_url, self.signer())
        return send_issue(
            self.engine,
            self.render(issue),
            transport or self.transport(issue),
            envelope,
            links,
            self.clock,
            batch_size=sending.batch_size,
            in_flight=sending.in_flight,
            lease=timedelta(minutes=sending.lease_minutes),
            ambiguous_policy=ambiguous_policy,
            on_batch=on_batch,
        )

    def send_test(
        self,
        to: str,
        digest_slug: str | None = None,
        segment: frozenset[str] | None = None,
        as_email: str | None = None,
        issue: Issue | None = None,
    ) -> tuple[Issue, TopicSet, str]:
        """One variant of ``issue`` (default: the next one) to an editor, marked [TEST],
        outside the ledger.

        The variant is the given topic set, else the one ``as_email`` would get, else every
        topic. Personal links are the sample ones, so a test can unsubscribe nobody.
        """
        if issue is None:
            planned = self.plan(digest_slug, save=False)
            issue = planned.issue if planned else self.latest_issue(digest_slug)
        if issue is None:
            raise DigestError("no issue to test: nothing new has been gathered yet")
        key = segment or frozenset(issue.topic_slugs)
        if as_email:
            with self.engine.connect() as conn:
                reader = SubscriberStore(conn).get(as_email)
            if reader is None:
                raise DigestError("is not a subscriber", where=as_email)
            key = reader.topics & frozenset(issue.topic_slugs)
            if not key:
                raise DigestError(
                    "gets nothing from this issue (no topic of theirs is in it)", where=as_email
                )
        unknown = key - frozenset(issue.topic_slugs)
        if unknown:
            raise DigestError(
                f"topics not in this issue: {', '.join(sorted(unknown))} "
                f"(it has {', '.join(issue.topic_slugs)})",
                where="--segment",
            )
        variant = self.render(issue).variant(key)
        values = sample_values(self.config.site.public_url, issue.topic_slugs)
        sending = self.config.sending
        subject = f"[TEST] {compile_template(variant.subject).fill(values)}"
        message = compose(
            Address(sending.from_name, addr_spec=sending.from_email),
            Address(addr_spec=to),
            subject,
            compile_template(variant.text).fill(values),
            compile_template(variant.html).fill(values),
            self.clock(),
        )
        self.mailer()(message)
        return issue, key, subject

    def run(
        self,
        digest_slug: str | None = None,
        client: httpx.Client | None = None,
        transport: Transport | None = None,
    ) -> RunResult:
        """Gather, plan, send, by hand (``digest run``). The scheduler runs
        :func:`digest.schedule.run_slot` instead, which plans per slot and adds the approval
        gate; this refuses a held or pending issue like :meth:`send`."""
        gathered = self.gather(client)
        planned, sent = self.send(digest_slug, transport)
        return RunResult(gathered, planned, sent)

    def mailer(self) -> Callable[[EmailMessage], None]:
        """Sends one message (a confirmation request) through the configured transport."""
        return self.transport(None).send_message

    def signer(self) -> TokenSigner:
        secrets = self.config.secrets
        return TokenSigner(
            secrets.require_secret_key(),
            previous_key=secrets.previous_secret_key,
            previous_until=self.config.file.security.previous_key_until,
            clock=self.clock,
        )

    def subscribers(self) -> SubscriberStore:
        """A store on a fresh connection; the caller commits (``store.conn.commit()``)."""
        return SubscriberStore(self.engine.connect())


def archive_url(public_url: str, digest: str, number: int) -> str:
    """Where the issue's web-archive page ("view in browser") is served."""
    return f"{public_url}/archive/{digest}/{number}/"


def sample_values(
    public_url: str,
    slugs: tuple[str, ...],
    first_name: str = "Alex",
    email: str = "alex@example.com",
) -> dict[str, str]:
    """Personal values for previews: a sample reader (or a named one's name and address) whose
    links lead to the generic pages, so clicking around a preview unsubscribes nobody."""
    return token_values(
        {
            "first_name": first_name,
            "email": email,
            "unsubscribe_url": f"{public_url}/unsubscribe",
            "preferences_url": f"{public_url}/preferences",
        },
        {slug: f"{public_url}/unsubscribe?topic={slug}" for slug in slugs},
    )


def _preview_index(
    rendered: RenderedIssue,
    files: dict[TopicSet, Path],
    segments: dict[TopicSet, int],
    sizes: dict[TopicSet, int],
    trimmed: dict[TopicSet, dict[str, int]],
) -> str:
    issue = rendered.issue
    names = {s.topic.slug: s.topic.name for s in issue.sections}
    rows: list[dict[str, object]] = []
    for key, path in files.items():
        sections = rendered.sections(key)
        rows.append(
            {
                "file": path.name,
                "topics": ", ".join(names[s] for s in issue.topic_slugs if s in key),
                "readers": segments.get(key, 0),
                "posts": post_count(sections),
                "subject": rendered.subject(sections),
                "kib": f"{sizes[key] / 1024:.0f}",
                "over_budget": sizes[key] > HTML_BUDGET_BYTES,
                "trimmed": ", ".join(f"{names[s]} −{n}" for s, n in trimmed[key].items()),
            }
        )
    title = f"{rendered.ctx.digest_name} · issue {issue.number} · preview"
    return rendered.env.get_template(PREVIEW_INDEX).render(
        title=title, rows=rows, budget_kib=HTML_BUDGET_BYTES // 1024
    )
