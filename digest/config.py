"""Load and validate ``digest.toml``.

Every problem is reported as one line naming the file, the exact key and what was expected,
because the person reading it is editing that file, not reading our code. Secrets never live
in the file: they are read from the environment mapping handed to :func:`load_config`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from jinja2 import Environment, TemplateSyntaxError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from digest.errors import ConfigError, SecretMissing
from digest.passwords import InvalidHash, parse_hash

CONFIG_ENV = "DIGEST_CONFIG"
DEFAULT_CONFIG = "digest.toml"
SECRET_KEY_ENV = "DIGEST_SECRET_KEY"  # noqa: S105 (a variable name, not a secret)
SENDGRID_KEY_ENV = "SENDGRID_API_KEY"
SMTP_PASSWORD_ENV = "DIGEST_SMTP_PASSWORD"  # noqa: S105 (a variable name)
PREVIOUS_KEY_ENV = "DIGEST_PREVIOUS_SECRET_KEY"
SENDGRID_HOST_ENV = "SENDGRID_API_HOST"

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an absolute http(s) URL such as 'https://blog.example.com'")
    return value.rstrip("/")


def _email_address(value: str) -> str:
    _, address = _split_display_name(value)
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError(f"expected an email address ({err})") from None
    return value


def _split_display_name(value: str) -> tuple[str, str]:
    """``'Name <a@b>'`` → ``('Name', 'a@b')``; a bare address has an empty name."""
    if value.endswith(">") and "<" in value:
        name, _, rest = value.rpartition("<")
        return name.strip().strip('"'), rest[:-1].strip()
    return "", value.strip()


def _public_url(value: str) -> str:
    """Mail clients only honour https unsubscribe links; plain http is for local testing."""
    value = _http_url(value)
    parts = urlsplit(value)
    if parts.scheme != "https" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError("expected an https URL (http is accepted for localhost only)")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
PublicUrl = Annotated[str, AfterValidator(_public_url)]
EmailAddress = Annotated[str, AfterValidator(_email_address)]
Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SiteConfig(_Strict):
    name: str = Field(min_length=1)
    url: HttpUrl
    public_url: PublicUrl = Field(
        description="Where `digest serve` is reachable: unsubscribe and preference links."
    )
    postal_address: str = Field(min_length=1)
    logo: str | None = None
    language: str = Field(default="en", description="language and locale of the emails, e.g. de_DE")
    templates: str | None = Field(
        default=None, description="a folder whose templates override the bundled ones"
    )

    @field_validator("language")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value.replace("-", "_"))
        except (ValueError, UnknownLocaleError):
            raise ValueError("expected a locale such as 'en', 'de' or 'pt_BR'") from None
        return value


_COLOR = r"^#[0-9a-fA-F]{6}$"


class ThemeConfig(_Strict):
    """Colors hold on white and, through the dark-mode styles, on dark backgrounds."""

    brand: str = Field(default="#1f3a5f", pattern=_COLOR)
    accent: str = Field(default="#c2410c", pattern=_COLOR)
    text: str = Field(default="#1f2933", pattern=_COLOR)
    muted: str = Field(default="#52606d", pattern=_COLOR)
    background: str = Field(default="#eef1f5", pattern=_COLOR)
    font: str = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


ApprovalPolicy = Literal["auto", "require", "hold"]
"""Whether a scheduled issue needs an editor: see CONTEXT.md (approval policy)."""

SourceKind = Literal["auto", "feed", "jsonfeed", "wordpress", "markdown"]


class SourceConfig(_Strict):
    """A source under a topic: every post it gives belongs to that topic."""

    url: str = Field(min_length=1, description="http(s) URL, file:// URL or a path")
    name: str | None = None
    kind: SourceKind = "auto"
    base_url: str | None = Field(
        default=None, description="markdown folders: post URL = base_url + file name"
    )

    @property
    def label(self) -> str:
        return self.name or self.url


class SharedSourceConfig(SourceConfig):
    """A source feeding several topics: each post goes to the topics its own categories or
    tags name (a topic's name or slug, any case), or that ``categories`` maps them to."""

    categories: dict[str, str] = Field(
        default_factory=dict, description="category or tag → topic slug"
    )


class TopicConfig(_Strict):
    slug: Slug
    name: str = Field(min_length=1)
    url: HttpUrl | None = Field(default=None, description="the topic's page on the blog")
    sources: list[SourceConfig] = Field(default_factory=list)
    default_image: str | None = Field(
        default=None, description="hero for posts that have none (path or URL)"
    )


class DigestConfig(_Strict):
    slug: Slug
    name: str = Field(min_length=1)
    schedule: str = "0 8 * * mon"
    timezone: str = "UTC"
    topics: list[str] = Field(default_factory=list, description="topic slugs; empty = all")
    max_posts_per_topic: int = Field(default=4, ge=1, le=50)
    subject: str | None = Field(default=None, description="Jinja template of the subject line")
    preheader: str | None = Field(default=None, description="Jinja template of the preheader")
    approval: ApprovalPolicy = Field(
        default="auto",
        description="auto: sent at the slot; require: an editor approves before the slot or it "
        "is skipped; hold: never sent by the scheduler, an editor sends it",
    )
    approval_lead_hours: float = Field(
        default=24, gt=0, description="require: editors are asked this long before the slot"
    )
    misfire_grace_hours: float = Field(
        default=6,
        gt=0,
        description="a slot missed by downtime still runs when the scheduler is back this soon",
    )
    notify: list[EmailAddress] = Field(
        default_factory=list, description="editors asked to approve (approval = 'require')"
    )

    @field_validator("subject", "preheader")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Environment(autoescape=True).parse(value)
            except TemplateSyntaxError as err:
                raise ValueError(f"not a valid template ({err.message})") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("expected an IANA time zone such as 'Europe/Berlin'") from None
        return value

    @model_validator(mode="after")
    def _valid_cron(self) -> DigestConfig:
        try:
            CronTrigger.from_crontab(self.schedule, timezone=ZoneInfo(self.timezone))
        except ValueError as err:
            raise ValueError(
                f"schedule: expected a cron expression such as '0 8 * * mon' ({err})"
            ) from None
        return self

    @model_validator(mode="after")
    def _someone_to_ask(self) -> DigestConfig:
        if self.approval == "require" and not self.notify:
            raise ValueError(
                "notify: approval = 'require' needs at least one editor address to ask, "
                'e.g. notify = ["editor@example.com"]'
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def approval_lead(self) -> timedelta:
        return timedelta(hours=self.approval_lead_hours)

    @property
    def misfire_grace(self) -> timedelta:
        return timedelta(hours=self.misfire_grace_hours)


class SmtpConfig(_Strict):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)


class SendGridConfig(_Strict):
    api_host: HttpUrl = Field(
        default="https://api.sendgrid.com",
        description="https://api.eu.sendgrid.com for EU data residency; $SENDGRID_API_HOST wins",
    )
    timeout_seconds: float = Field(default=30.0, gt=0)
    retries: int = Field(default=4, ge=0, le=10)
    asm_group_id: int | None = Field(default=None, description="unsubscribe group")
    sandbox_mode: bool = False
    webhook_public_key: str | None = Field(
        default=None, description="the Event Webhook's verification key (base64), from SendGrid"
    )
    webhook_tolerance_seconds: int = Field(default=600, ge=1, description="older is stale")
    webhook_max_bytes: int = Field(
        default=5_000_000,
        ge=1024,
        description="a larger event batch is refused (413) before it is read whole",
    )


class SendingConfig(_Strict):
    transport: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    from_address: EmailAddress = Field(alias="from")
    reply_to: EmailAddress | None = None
    outbox_dir: str = "outbox"
    unsubscribe_mailto: EmailAddress | None = None
    batch_size: int = Field(default=1000, ge=1, le=1000)
    in_flight: int = Field(
        default=4, ge=1, le=32, description="SendGrid requests under way at once"
    )
    lease_minutes: float = Field(
        default=10.0,
        gt=0,
        description="how long a worker holds a batch before others treat it as abandoned; "
        "longer than a request with all its retries",
    )
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    sendgrid: SendGridConfig = Field(default_factory=SendGridConfig)

    @model_validator(mode="after")
    def _lease_outlasts_a_request(self) -> SendingConfig:
        """A worker whose lease ran out looks dead to the others, which then treat its batch
        as ambiguous while it may still be sending it."""
        sendgrid = self.sendgrid
        worst = (sendgrid.retries + 1) * sendgrid.timeout_seconds + sendgrid.retries * 60
        if self.transport == "sendgrid" and self.lease_minutes * 60 <= worst:
            raise ValueError(
                f"lease_minutes: {self.lease_minutes:g} is shorter than one request with all "
                f"its retries can take ({worst / 60:.1f} minutes with sendgrid.timeout_seconds "
                f"= {sendgrid.timeout_seconds:g} and sendgrid.retries = {sendgrid.retries})"
            )
        return self

    @property
    def from_name(self) -> str:
        return _split_display_name(self.from_address)[0]

    @property
    def from_email(self) -> str:
        return _split_display_name(self.from_address)[1]


class GatherConfig(_Strict):
    timeout_seconds: float = Field(default=20.0, gt=0)
    max_bytes: int = Field(default=10_000_000, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    retries: int = Field(default=2, ge=0, le=10)
    concurrency: int = Field(default=4, ge=1, le=32, description="hosts fetched at once")
    max_pages: int = Field(default=5, ge=1, le=100, description="WordPress API pages per source")
    excerpt_words: int = Field(default=40, ge=5, le=500)
    og_image: bool = Field(default=False, description="fetch article pages for og:image")
    user_agent: str = (
        "digest-generator/0.1 (newsletter digests; +https://pypi.org/project/digest-generator/)"
    )


class SecurityConfig(_Strict):
    previous_key_until: datetime | None = Field(
        default=None,
        description=f"accept links signed with ${PREVIOUS_KEY_ENV} until then (key rotation)",
    )


class WebConfig(_Strict):
    subscribe_limit: int = Field(default=5, ge=1, description="sign-ups per client per window")
    subscribe_window_seconds: int = Field(default=600, ge=1)
    address_limit: int = Field(
        default=3,
        ge=1,
        description="confirmation and link emails to one address per window, whoever asks",
    )
    pause_days: int = Field(default=28, ge=1, le=365)


def _password_hash(value: str) -> str:
    try:
        parse_hash(value)
    except InvalidHash as err:
        raise ValueError(str(err)) from None
    return value


class EditorUserConfig(_Strict):
    """An editor defined in the file (the database holds those added with `digest editors add`).
    Only the hash is here, never the password: `digest editors hash` prints one."""

    email: EmailAddress
    name: str = ""
    password_hash: Annotated[str, AfterValidator(_password_hash)]


class EditorConfig(_Strict):
    """The editor web app under `/editor/` of `digest serve`."""

    users: list[EditorUserConfig] = Field(default_factory=list)
    session_hours: float = Field(default=12, gt=0, le=24 * 30, description="login lifetime")
    login_limit: int = Field(
        default=10, ge=1, description="failed logins per client, and per account, per window"
    )
    login_window_seconds: int = Field(default=900, ge=1)
    caniemail_csv: str | None = Field(
        default=None,
        description="caniemail's flat support CSV; preflight checks client support with it",
    )


class FileConfig(_Strict):
    """The shape of ``digest.toml``."""

    site: SiteConfig
    database_url: str | None = None
    topics: list[TopicConfig] = Field(min_length=1)
    sources: list[SharedSourceConfig] = Field(default_factory=list)
    digests: list[DigestConfig] = Field(min_length=1)
    sending: SendingConfig
    gather: GatherConfig = Field(default_factory=GatherConfig)
    theme: ThemeConfig = Field(default_factory=ThemeConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    editor: EditorConfig = Field(default_factory=EditorConfig)

    @model_validator(mode="after")
    def _cross_references(self) -> FileConfig:
        slugs = [t.slug for t in self.topics]
        for dup in {s for s in slugs if slugs.count(s) > 1}:
            raise ValueError(f"topics: slug '{dup}' is used twice")
        for i, source in enumerate(self.sources):
            for category, slug in source.categories.items():
                if slug not in slugs:
                    raise ValueError(
                        f"sources[{i}].categories: {category!r} maps to unknown topic '{slug}' "
                        f"(expected one of: {', '.join(slugs)})"
                    )
        digest_slugs = [d.slug for d in self.digests]
        for dup in {s for s in digest_slugs if digest_slugs.count(s) > 1}:
            raise ValueError(f"digests: slug '{dup}' is used twice")
        for i, digest in enumerate(self.digests):
            for slug in digest.topics:
                if slug not in slugs:
                    raise ValueError(
                        f"digests[{i}].topics: unknown topic '{slug}' "
                        f"(expected one of: {', '.join(slugs)})"
                    )
        return self


@dataclass(frozen=True)
class Secrets:
    """Values that come from the environment only."""

    secret_key: str | None = None
    sendgrid_api_key: str | None = None
    smtp_password: str | None = None
    previous_secret_key: str | None = None
    sendgrid_api_host: str | None = None
    """Not a secret, but an environment override (EU residency, tests)."""

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise SecretMissing(
                f"{SECRET_KEY_ENV} is not set: it signs unsubscribe and preference links. "
                f'Set it to a long random value, e.g. export {SECRET_KEY_ENV}="$(python -c '
                "'import secrets; print(secrets.token_urlsafe(32))')\""
            )
        return self.secret_key


@dataclass(frozen=True)
class Config:
    """A loaded configuration with every relative path resolved against the file's folder."""

    path: Path
    file: FileConfig
    secrets: Secrets

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def site(self) -> SiteConfig:
        return self.file.site

    @property
    def topics(self) -> list[TopicConfig]:
        return self.file.topics

    @property
    def digests(self) -> list[DigestConfig]:
        return self.file.digests

    @property
    def sending(self) -> SendingConfig:
        return self.file.sending

    @property
    def gather(self) -> GatherConfig:
        return self.file.gather

    @property
    def database_url(self) -> str:
        url = self.file.database_url
        if url is None:
            return f"sqlite:///{self.base_dir / 'digest.sqlite3'}"
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != "sqlite:///:memory:":
            path = Path(url[len(prefix) :])
            if not path.is_absolute():
                return f"{prefix}{self.base_dir / path}"
        return url

    @property
    def outbox_dir(self) -> Path:
        return self.resolve_path(self.sending.outbox_dir)

    def resolve_path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def source_location(self, source: SourceConfig) -> str:
        """An http(s) or file URL for a source; bare paths are relative to the config file."""
        scheme = urlsplit(source.url).scheme
        if scheme in ("http", "https", "file"):
            return source.url
        return self.resolve_path(source.url).resolve().as_uri()

    def logo_url(self) -> str | None:
        return self.asset_url(self.site.logo)

    def asset_url(self, value: str | None) -> str | None:
        """An image named in the config: URLs as they are, paths relative to the config."""
        if value is None or urlsplit(value).scheme in ("http", "https", "file"):
            return value
        return self.resolve_path(value).resolve().as_uri()

    def digest(self, slug: str | None) -> DigestConfig:
        if slug is None:
            return self.digests[0]
        for digest in self.digests:
            if digest.slug == slug:
                return digest
        known = ", ".join(d.slug for d in self.digests)
        raise ConfigError(f"no digest '{slug}' (expected one of: {known})", where=str(self.path))

    def digest_topics(self, digest: DigestConfig) -> list[TopicConfig]:
        if not digest.topics:
            return list(self.topics)
        by_slug = {t.slug: t for t in self.topics}
        return [by_slug[s] for s in digest.topics]


def resolve_config_path(given: str | Path | None, environ: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``$DIGEST_CONFIG``, then ``./digest.toml``."""
    if given:
        return Path(given)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "no such file (create one with `digest init DIR`, or pass --config)", where=str(path)
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", where=str(path)) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", where=str(path)) from None
    try:
        parsed = FileConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err), where=str(path)) from None
    secrets = Secrets(
        secret_key=environ.get(SECRET_KEY_ENV) or None,
        sendgrid_api_key=environ.get(SENDGRID_KEY_ENV) or None,
        smtp_password=environ.get(SMTP_PASSWORD_ENV) or None,
        previous_secret_key=environ.get(PREVIOUS_KEY_ENV) or None,
        sendgrid_api_host=environ.get(SENDGRID_HOST_ENV) or None,
    )
    return Config(path=path.resolve(), file=parsed, secrets=secrets)


def _describe(err: ValidationError) -> str:
    """Turn pydantic's errors into lines of ``key: what is expected, got …``."""
    lines = []
    for problem in err.errors():
        key = _dotted(problem["loc"])
        kind = problem["type"]
        message = str(problem["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if kind == "missing":
            lines.append(f"{key}: required key is missing")
        elif kind == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        elif kind == "value_error" and ": " in message and not key:
            lines.append(message)
        elif kind == "value_error" and message.split(":", 1)[0].isidentifier() and ": " in message:
            prefix, _, rest = message.partition(": ")
            lines.append(f"{key}.{prefix}: {rest}" if key else message)
        else:
            got = problem.get("input")
            shown = "" if isinstance(got, dict | list) else f", got {got!r}"
            lines.append(f"{key}: {message[0].lower()}{message[1:]}{shown}")
    return "\n".join(lines)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
