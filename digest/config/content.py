"""What a digest is made of: the site it speaks for, its look, its topics and their sources,
and how posts are gathered from them."""

from __future__ import annotations

from typing import Annotated, Literal

from babel import Locale, UnknownLocaleError
from pydantic import AfterValidator, Field, field_validator

from digest.config.fields import HttpUrl, PublicUrl, Section, Slug, reachable_host


class SiteConfig(Section):
    name: str = Field(min_length=1)
    url: HttpUrl
    public_url: PublicUrl = Field(
        description="Where `digest serve` is reachable: unsubscribe and preference links."
    )
    postal_address: str = Field(min_length=1)
    logo: str | None = None
    images_url: HttpUrl | None = Field(
        default=None,
        description="where the project's local images are served (a copy of "
        "published/images/); default: public_url + /images/, served by `digest serve`",
    )
    logo_dark: str | None = Field(
        default=None, description="the logo for dark backgrounds, shown in dark mode"
    )
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


class ThemeConfig(Section):
    """Colors hold on white and, through the dark-mode styles, on dark backgrounds."""

    brand: str = Field(default="#1f3a5f", pattern=_COLOR)
    accent: str = Field(default="#c2410c", pattern=_COLOR)
    text: str = Field(default="#1f2933", pattern=_COLOR)
    muted: str = Field(default="#52606d", pattern=_COLOR)
    background: str = Field(default="#eef1f5", pattern=_COLOR)
    font: str = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


SourceKind = Literal["auto", "feed", "jsonfeed", "wordpress", "markdown"]


class SourceConfig(Section):
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


class TopicConfig(Section):
    slug: Slug
    name: str = Field(min_length=1, max_length=100)
    url: HttpUrl | None = Field(default=None, description="the topic's page on the blog")
    sources: list[SourceConfig] = Field(default_factory=list)
    default_image: str | None = Field(
        default=None, description="hero for posts that have none (path or URL)"
    )


class GatherConfig(Section):
    backfill_days: int = Field(
        default=30,
        ge=1,
        le=36_500,
        description="a digest's first issue takes the posts of this many days before the "
        "newest one, not the feeds' whole history",
    )
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
    allow_private: list[Annotated[str, AfterValidator(reachable_host)]] = Field(
        default_factory=list,
        description="hosts, addresses or networks gather may fetch from although they are not "
        'public (loopback, private, link-local): e.g. ["127.0.0.1", "10.0.0.0/8", '
        '"feeds.internal"]',
    )
