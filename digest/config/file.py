"""The shape of ``digest.toml`` as a whole, and the references between its sections."""

from __future__ import annotations

from pydantic import Field, model_validator

from digest.config.bounces import BouncesConfig
from digest.config.content import (
    GatherConfig,
    SharedSourceConfig,
    SiteConfig,
    ThemeConfig,
    TopicConfig,
)
from digest.config.digests import DigestConfig
from digest.config.fields import Section
from digest.config.sending import SendingConfig
from digest.config.web import EditorConfig, SecurityConfig, WebConfig


class FileConfig(Section):
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
    bounces: BouncesConfig = Field(default_factory=BouncesConfig)

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
