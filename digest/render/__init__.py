"""render: an issue → one variant per segment (subject, HTML, text) with neutral tokens.

Jinja2 → MJML (mrml) → CSS inlined (premailer) runs once per issue; each variant is assembled
from the cut result (:mod:`digest.render.assemble`). The text part and the subject are rendered
per segment from the same values, which is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from jinja2 import Environment
from markupsafe import Markup

from digest.models import Issue, TopicSet, Variant
from digest.personalize import HTML_TOKENS, TEXT_TOKENS
from digest.render.assemble import INTRO_MARKER, PREHEADER_MARKER, Cut, assemble, cut
from digest.render.environment import make_environment
from digest.render.inline import inline_css
from digest.render.layout import (
    SectionView,
    all_sections,
    date_label,
    intro_text,
    post_count,
    preheader_text,
    segment_sections,
)
from digest.render.mjml import compile_mjml

HTML_TEMPLATE = "email/digest.mjml.j2"


def trusted(text: str) -> Markup:
    """Our own tokens and markers: constants, never user text, so they may pass unescaped."""
    return Markup(text)  # noqa: S704


TEXT_TEMPLATE = "email/digest.txt.j2"
SUBJECT_TEMPLATE = "email/subject.txt.j2"


@dataclass(frozen=True)
class Theme:
    brand: str = "#1f3a5f"
    accent: str = "#c2410c"
    text: str = "#1f2933"
    muted: str = "#52606d"
    background: str = "#eef1f5"
    font: str = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class EmailContext:
    """Everything the templates show that is neither a post nor personal."""

    site_name: str
    site_url: str
    postal_address: str
    digest_name: str
    timezone: str
    logo_url: str | None = None
    language: str = "en"
    theme: Theme = field(default_factory=Theme)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _template_values(
    ctx: EmailContext, issue: Issue, sections: tuple[SectionView, ...]
) -> dict[str, object]:
    created = issue.created_at or issue.cutoff
    return {
        "ctx": ctx,
        "theme": ctx.theme,
        "issue": issue,
        "issue_date": date_label(created, ctx.zone),
        "sections": sections,
        "post_count": post_count(sections),
    }


def render_html_document(
    env: Environment,
    ctx: EmailContext,
    issue: Issue,
    sections: tuple[SectionView, ...],
    intro: str | Markup,
    preheader: str | Markup,
) -> str:
    """One full compile: Jinja2 → MJML → HTML → inlined CSS. Block markers are kept."""
    values = _template_values(ctx, issue, sections)
    tokens = {name: trusted(token) for name, token in HTML_TOKENS.items()}
    source = env.get_template(HTML_TEMPLATE).render(
        values, intro=intro, preheader=preheader, tokens=tokens
    )
    return inline_css(compile_mjml(source, HTML_TEMPLATE))


@dataclass(frozen=True)
class RenderedIssue:
    """The issue compiled once; :meth:`variant` assembles any segment's email from it."""

    issue: Issue
    ctx: EmailContext
    cut: Cut
    env: Environment

    def sections(self, key: TopicSet) -> tuple[SectionView, ...]:
        return segment_sections(self.issue, key, self.ctx.zone)

    def variant(self, key: TopicSet) -> Variant:
        sections = self.sections(key)
        html = assemble(self.cut, sections, intro_text(sections), preheader_text(sections))
        return Variant(
            key=key,
            subject=self.subject(sections),
            html=html,
            text=self.text(sections),
        )

    def subject(self, sections: tuple[SectionView, ...]) -> str:
        values = _template_values(self.ctx, self.issue, sections)
        rendered = self.env.get_template(SUBJECT_TEMPLATE).render(values)
        return " ".join(rendered.split())

    def text(self, sections: tuple[SectionView, ...]) -> str:
        values = _template_values(self.ctx, self.issue, sections)
        tokens = {name: trusted(token) for name, token in TEXT_TOKENS.items()}
        return self.env.get_template(TEXT_TEMPLATE).render(
            values, intro=intro_text(sections), tokens=tokens
        )


def render_issue(issue: Issue, ctx: EmailContext, env: Environment | None = None) -> RenderedIssue:
    env = env or make_environment()
    whole = render_html_document(
        env,
        ctx,
        issue,
        all_sections(issue, ctx.zone),
        trusted(INTRO_MARKER),
        trusted(PREHEADER_MARKER),
    )
    return RenderedIssue(issue, ctx, cut(whole), env)


def render_variants(
    rendered: RenderedIssue, keys: Mapping[TopicSet, object]
) -> dict[TopicSet, Variant]:
    return {key: rendered.variant(key) for key in keys}
