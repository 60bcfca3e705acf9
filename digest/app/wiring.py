"""A project's adapters, built from its config here and nowhere else: the database engine, the
clock, the sleep, the HTTP client for sources, the transport, the token signer, the mailer and
the template environment. Use cases (the other modules of :mod:`digest.app`) take a
:class:`Project` and compose stages and stores with these; faces never build an adapter.
"""

from __future__ import annotations

import ctypes
import functools
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage

import httpx
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from jinja2 import Environment
from sqlalchemy import Connection, Engine

from digest import db
from digest.app.images import IMAGES_ROUTE, ImagePublisher
from digest.bounces import ImapMailbox, ImapSettings
from digest.config import IMAP_PASSWORD_ENV, SENDGRID_KEY_ENV, Config, DigestConfig
from digest.errors import ConfigError, SecretMissing
from digest.gather.fetch import FetchLimits, SourceFetcher, http_client
from digest.models import Issue, Topic
from digest.render import EmailContext, RenderedIssue, Theme, render_issue
from digest.render.environment import make_environment
from digest.schedule.lock import SchedulerLock, acquire_lock, scheduler_running
from digest.send.message import require_header_verification
from digest.send.outbox import OutboxTransport
from digest.send.sendgrid import SendGridOptions, SendGridTransport
from digest.send.smtp import SmtpTransport
from digest.send.transport import Transport
from digest.stores import posts
from digest.verp import BounceTokens
from subscribers.erasure import KeyWrap, derived_key
from subscribers.store import SubscriberStore
from subscribers.tokens import TokenSigner

Clock = Callable[[], datetime]
Sleep = Callable[[float], None]
Mailer = Callable[[EmailMessage], None]


def utc_now() -> datetime:
    return datetime.now(UTC)


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def limit_malloc_arenas() -> None:
    """At most :data:`MALLOC_ARENAS` glibc malloc arenas in this process: called as the process
    starts (the console script, the benchmarks), before any thread allocates.

    glibc gives threads that allocate at once arenas of their own (up to eight per core), and
    an arena keeps the memory it once held. A send's threads each build requests of hundreds
    of kilobytes: a three-cadence send of a million readers peaked at 533 MB with the default
    and 413 MB with two arenas, at the same speed. Where there is no glibc ``mallopt`` (macOS),
    nothing changes."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def check_runtime() -> None:
    """What every face calls as it starts (the CLI, the web app, the scheduler): a DigestError
    on a Python whose email package does not check the headers it writes, before anything is
    built with it."""
    require_header_verification()


def fetch_limits(config: Config | None) -> FetchLimits:
    if config is None:
        return FetchLimits()
    g = config.gather
    return FetchLimits(
        g.timeout_seconds,
        g.max_bytes,
        g.max_redirects,
        g.retries,
        g.user_agent,
        tuple(g.allow_private),
    )


def upgrade_database(config: Config) -> str:
    """Apply the migrations to the config's database and nothing else (opening a
    :class:`Project` does this too, then syncs the topics); the database's URL, password
    hidden."""
    engine = db.make_engine(config.database_url)
    db.upgrade(engine)
    return engine.url.render_as_string(hide_password=True)


def archive_url(public_url: str, digest: str, number: int) -> str:
    """Where the issue's web-archive page ("view in browser") is served."""
    return f"{public_url}/archive/{digest}/{number}/"


class Project:
    """One configured project and its adapters. Tests pass their own clock, sleep and engine."""

    def __init__(
        self, config: Config, engine: Engine, clock: Clock = utc_now, sleep: Sleep = time.sleep
    ) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.sleep = sleep
        self._last_rendered: tuple[Issue, RenderedIssue] | None = None
        self._images: ImagePublisher | None = None
        self._inbox: Engine | None = None
        self._inbox_made = threading.Lock()
        self._erasure_keys: list[bytes] | None = None

    @classmethod
    def open(
        cls,
        config: Config,
        clock: Clock = utc_now,
        engine: Engine | None = None,
        sleep: Sleep = time.sleep,
    ) -> Project:
        """Connect and bring the schema up to date (migrations run on every open; cheap)."""
        engine = engine or db.make_engine(config.database_url)
        db.upgrade(engine)
        project = cls(config, engine, clock, sleep)
        with engine.begin() as conn:
            posts.sync_topics(conn, project.topics())
        project.erasure_keys()  # now, in a transaction of its own: it may write
        return project

    def erasure_keys(self, again: bool = False) -> list[bytes]:
        """The keys of the erased addresses' hashes (:mod:`subscribers.erasure`), unwrapped
        with the secret keys once per process; wrapped with the previous secret key, they are
        rewrapped with the current one (the rotation's one step), and the first time the
        keys hashes were made with before they were kept are adopted. Empty without a secret
        key, or when none of those kept opens with the keys set. ``again``: read them
        anew (after a change to them)."""
        if self._erasure_keys is None or again:
            given = self.config.secrets.secret_keys()
            if not given:
                self._erasure_keys = []
            else:
                with self.transaction() as conn:
                    self._erasure_keys = SubscriberStore(conn).erasure_keys(
                        KeyWrap(given), [derived_key(k) for k in given], self.clock()
                    )
        return self._erasure_keys

    # the database ----------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads; nothing it does is committed."""
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.engine.begin() as conn:
            yield conn

    def inbox(self) -> Engine:
        """Where verified webhook batches are staged (:mod:`digest.app.feedback`). On a SQLite
        file it is a second file beside the database (``digest.sqlite3`` →
        ``digest.inbox.sqlite3``): SQLite takes one writer per file, and a webhook answer must
        not wait while a drain writes thousands of events to the database. Elsewhere (and
        for an in-memory SQLite) it is the database's own ``event_inbox`` table."""
        with self._inbox_made:  # the drain thread and a request may ask first at once
            if self._inbox is None:
                self._inbox = db.inbox_engine(self.engine)
            return self._inbox

    def job_store(self, table: str) -> SQLAlchemyJobStore:
        """The scheduler's job store, in the project database."""
        return SQLAlchemyJobStore(engine=self.engine, tablename=table)

    def scheduler_lock(self) -> SchedulerLock:
        """The lock that lets one scheduler run per database (SchedulerBusy if taken)."""
        return acquire_lock(self.engine)

    def scheduler_running(self) -> bool:
        return scheduler_running(self.engine)

    # the config's views ----------------------------------------------------------------------

    def topics(self, digest: DigestConfig | None = None) -> list[Topic]:
        chosen = self.config.digest_topics(digest) if digest else self.config.topics
        return [Topic(t.slug, t.name) for t in chosen]

    # sources ---------------------------------------------------------------------------------

    @contextmanager
    def fetcher(self, client: httpx.Client | None = None) -> Iterator[SourceFetcher]:
        """The source fetcher, on ``client`` if given (tests), else on a client of its own."""
        limits = fetch_limits(self.config)
        owned = client is None
        client = client or http_client(limits)
        try:
            yield SourceFetcher(client, limits, sleep=self.sleep)
        finally:
            if owned:
                client.close()

    # rendering -------------------------------------------------------------------------------

    def email_context(self, digest: DigestConfig, issue_number: int) -> EmailContext:
        site = self.config.site
        theme = self.config.file.theme
        return EmailContext(
            site_name=site.name,
            site_url=site.url,
            postal_address=site.postal_address,
            digest_name=digest.name,
            timezone=digest.timezone,
            logo_url=self.images().url(self.config.logo_url()),
            logo_dark_url=self.images().url(self.config.logo_dark_url()),
            language=site.language,
            theme=Theme(
                theme.brand, theme.accent, theme.text, theme.muted, theme.background, theme.font
            ),
            archive_url=archive_url(site.public_url, digest.slug, issue_number),
            public_url=site.public_url,
            topic_urls={t.slug: t.url or site.url for t in self.config.topics},
            subject_template=digest.subject,
            preheader_template=digest.preheader,
        )

    def images(self) -> ImagePublisher:
        """Publishes the project's local images (:mod:`digest.app.images`)."""
        if self._images is None:
            site = self.config.site
            base = site.images_url or site.public_url.rstrip("/") + IMAGES_ROUTE
            self._images = ImagePublisher(self.config.base_dir, base)
        return self._images

    def environment(self) -> Environment:
        folder = self.config.site.templates
        return make_environment(self.config.resolve_path(folder) if folder else None)

    def render(self, issue: Issue) -> RenderedIssue:
        """The issue rendered once: a use case that sends and then shows what it sent (or a
        page that previews several segments) asks again for the same issue, and rendering
        is the expensive step. The last issue rendered is kept; a changed issue (an editor
        left a post out) is a different value and renders anew."""
        last = self._last_rendered
        if last is not None and last[0] == issue:
            return last[1]
        digest = self.config.digest(issue.digest)
        public = self.images().issue(issue)  # local images as URLs every reader can load
        rendered = render_issue(
            public, self.email_context(digest, issue.number), self.environment()
        )
        self._last_rendered = (issue, rendered)
        return rendered

    # sending ---------------------------------------------------------------------------------

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
            address = self.config.file.bounces.address
            bounces = (self.bounce_tokens(), address) if address and issue is not None else None
            return SmtpTransport(
                sending.smtp, self.config.secrets.smtp_password, self.clock, bounces=bounces
            )
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

    def mailer(self) -> Mailer:
        """Sends one message (a confirmation request, an approval request) through the
        configured transport."""
        return self.transport(None).send_message

    def bounce_tokens(self) -> BounceTokens:
        """Signs and reads the token of each SMTP delivery's return path (:mod:`digest.verp`)."""
        secrets = self.config.secrets
        return BounceTokens(secrets.require_secret_key(), secrets.previous_secret_key)

    def bounce_mailbox(self, context: ssl.SSLContext | None = None) -> ImapMailbox:
        """The IMAP mailbox of ``[bounces]`` (not yet connected: use it in a ``with``);
        ConfigError naming the key that is missing."""
        settings = self.config.file.bounces
        where = str(self.config.path)
        for key in ("address", "imap_host", "imap_user"):
            if not getattr(settings, key):
                raise ConfigError(
                    f"bounces.{key}: not set (digest bounces fetch reads the bounce mailbox "
                    "named in [bounces])",
                    where=where,
                )
        password = self.config.secrets.imap_password
        if not password:
            raise SecretMissing(f"{IMAP_PASSWORD_ENV} is not set: the bounce mailbox's password")
        assert settings.imap_host is not None and settings.imap_user is not None
        return ImapMailbox(
            ImapSettings(
                settings.imap_host,
                settings.port,
                settings.imap_user,
                password,
                settings.imap_tls,
                settings.imap_folder,
                settings.timeout_seconds,
                context,
            )
        )

    def signer(self) -> TokenSigner:
        secrets = self.config.secrets
        return TokenSigner(
            secrets.require_secret_key(),
            previous_key=secrets.previous_secret_key,
            previous_until=self.config.file.security.previous_key_until,
            clock=self.clock,
        )
