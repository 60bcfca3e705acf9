"""A loaded configuration: the file's sections, the secrets, and paths resolved against the
file's folder so a project works from whatever directory it is run in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from digest.config.content import GatherConfig, SiteConfig, SourceConfig, TopicConfig
from digest.config.digests import DigestConfig
from digest.config.environment import Secrets
from digest.config.file import FileConfig
from digest.config.sending import SendingConfig
from digest.errors import ConfigError


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

    def logo_dark_url(self) -> str | None:
        return self.asset_url(self.site.logo_dark)

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

    def cadence(self, digest: DigestConfig, name: str | None) -> str:
        """One of the digest's cadences by name (None: its default), or a ConfigError naming
        the ones it offers."""
        if name is None:
            return digest.default
        if name in digest.schedules:
            return name
        offered = ", ".join(repr(c) for c in digest.schedules if c) or "only its `schedule`"
        raise ConfigError(
            f"digest '{digest.slug}' has no cadence {name!r} (it offers {offered})",
            where=str(self.path),
        )

    def digest_topics(self, digest: DigestConfig) -> list[TopicConfig]:
        if not digest.topics:
            return list(self.topics)
        by_slug = {t.slug: t for t in self.topics}
        return [by_slug[s] for s in digest.topics]
