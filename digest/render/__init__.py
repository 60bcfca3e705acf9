"""render: an issue → one variant per segment (subject, HTML, text) with neutral tokens.

Jinja2 → MJML (mrml) → CSS inlined (premailer) runs once per issue; each variant is assembled
from the cut result (:mod:`digest.render.assemble`) and fitted to the size budget. The text
part, the subject and the preheader are rendered per segment from the same values: cheap.

The budget holds for the HTML as sent, not the variant: the room personalizing can take at
most (the longest name, address and token the rules allow, the links bound to the public URL:
:class:`digest.personalize.Growth`) is counted in. To fit, cards go first, from the topic with
the most; then, from the last topic up, topics collapse to one "more" line each leading to the
topic on the issue's web-archive page; then, from the last up, collapsed topics leave the email
for one line that counts them. The archive page (:meth:`RenderedIssue.archive`) shows all.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from zoneinfo import ZoneInfo

from babel import Locale
from jinja2 import Environment, Template, TemplateError
from markupsafe import Markup

from digest.errors import ConfigError, DigestError
from digest.models import HeroImage, Issue, Owed, TopicSet, Variant
from digest.personalize import HTML_TOKENS, TEXT_TOKENS, Growth, topic_tokens
from digest.render.assemble import (
    INTRO_MARKER,
    PREHEADER_MARKER,
    REST_BLOCK,
    REST_MARKER,
    TOPICS_MARKER,
    Cut,
    SegmentTexts,
    assemble,
    check_blocks,
    cut,
    more_marker,
    section_blocks,
    strip_markers,
)
from digest.render.environment import make_environment
from digest.render.inline import inline_css
from digest.render.layout import (
    CardView,
    SectionView,
    all_sections,
    cards_of,
    date_label,
    intro_text,
    largest_section,
    post_count,
    segment_sections,
    topic_anchor,
    topic_names,
)
from digest.render.mjml import compile_mjml
from digest.render.size import HTML_BUDGET_BYTES

HTML_TEMPLATE = "email/digest.mjml.j2"
TEXT_TEMPLATE = "email/digest.txt.j2"
SECTION_TEXT_TEMPLATE = "email/partials/section.txt.j2"
NOTE_TEXT_TEMPLATE = "email/partials/note.txt.j2"
SUBJECT_TEMPLATE = "email/subject.txt.j2"
PREHEADER_TEMPLATE = "email/preheader.txt.j2"
CARD_IMAGE_WIDTH = 216
"""The hero's width in the 600 px layout: 42 % of 600 less the column's padding."""
HERO_MAX_HEIGHT = 300
"""No hero is taller than this (CSS px), whatever its shape: a portrait image scaled to a
phone's width would otherwise fill two screens."""
PHONE_COLUMN = 432
"""The widest a hero gets on a phone: the 480 px breakpoint less the card's padding."""


@dataclass(frozen=True)
class HeroFit:
    """How a hero is sized. ``width`` is the ``width`` attribute (what Outlook on Windows,
    which ignores CSS sizes, shows). No ``height`` attribute: Yahoo turns ``height:auto`` into
    ``min-height:auto``, and then the attribute sets the height and squashes the image.

    ``spans``: the shape is known and flat enough to scale to the column's width on every
    screen within :data:`HERO_MAX_HEIGHT`. Otherwise (unknown or tall) the image keeps its
    own shape inside ``max-width:100%`` and ``max-height``, and is never stretched."""

    width: int
    spans: bool


def hero_fit(image: HeroImage) -> HeroFit:
    if image.width and image.height and image.width > 0 and image.height > 0:
        if image.height * PHONE_COLUMN <= HERO_MAX_HEIGHT * image.width:
            return HeroFit(CARD_IMAGE_WIDTH, True)
        capped = HERO_MAX_HEIGHT * image.width // image.height
        return HeroFit(max(1, min(CARD_IMAGE_WIDTH, capped)), False)
    return HeroFit(CARD_IMAGE_WIDTH, False)


PREHEADER_LIMIT = 110


def trusted(text: str) -> Markup:
    """Our own tokens and markers: constants, never user text, so they may pass unescaped."""
    return Markup(text)  # noqa: S704


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
    logo_dark_url: str | None = None
    """The logo for dark backgrounds (``[site] logo_dark``), shown by the dark-mode styles."""
    language: str = "en"
    theme: Theme = field(default_factory=Theme)
    archive_url: str = ""
    public_url: str = ""
    """Where the email's personal links lead (:func:`digest.personalize.bind_links`): the size
    budget counts them as they will be sent."""
    topic_urls: dict[str, str] = field(default_factory=dict)
    subject_template: str | None = None
    preheader_template: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def locale(self) -> str:
        return self.language.replace("-", "_")

    @property
    def direction(self) -> str:
        return (Locale.parse(self.locale).character_order == "right-to-left" and "rtl") or "ltr"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _render(template: Template, values: dict[str, object], key: str, issue: Issue) -> str:
    """A digest's subject or preheader; a template that fails on the issue's values (an
    attribute it does not have, say) is a config error naming the key, not a traceback."""
    try:
        return template.render(values)
    except TemplateError as err:
        raise ConfigError(f"the template fails: {err}", where=f"{issue.digest}.{key}") from None


@functools.cache
def _html_tokens(slugs: tuple[str, ...]) -> dict[str, object]:
    tokens: dict[str, object] = {name: trusted(t) for name, t in HTML_TOKENS.items()}
    tokens["topic_unsubscribe"] = {s: trusted(t) for s, t in topic_tokens(slugs).items()}
    return tokens


@functools.cache
def _text_tokens(slugs: tuple[str, ...]) -> dict[str, object]:
    """Made once per topic list (and only read): a send asks for them per variant."""
    tokens: dict[str, object] = {name: trusted(t) for name, t in TEXT_TOKENS.items()}
    tokens["topic_unsubscribe"] = {s: trusted(t) for s, t in topic_tokens(slugs, text=True).items()}
    return tokens


@dataclass(frozen=True)
class ArchiveLinks:
    """Where the web-archive page's footer leads instead of the personal links."""

    subscribe_url: str
    index_url: str
    feed_url: str


@dataclass(frozen=True)
class Renderer:
    """Templates and context of one digest; renders whole documents and the per-segment texts."""

    ctx: EmailContext
    env: Environment

    @cached_property
    def subject_template(self) -> Template:
        if self.ctx.subject_template:
            return self.env.from_string(self.ctx.subject_template)
        return self.env.get_template(SUBJECT_TEMPLATE)

    @cached_property
    def preheader_template(self) -> Template:
        if self.ctx.preheader_template:
            return self.env.from_string(self.ctx.preheader_template)
        return self.env.get_template(PREHEADER_TEMPLATE)

    @cached_property
    def _dates(self) -> dict[datetime, str]:
        return {}

    def _date_label(self, moment: datetime) -> str:
        """The issue's date in the digest's zone and language, formatted once: babel took a
        sixth of a variant's time, and a send of switched readers makes thousands."""
        found = self._dates.get(moment)
        if found is None:
            found = self._dates[moment] = date_label(moment, self.ctx.zone, self.ctx.locale)
        return found

    def values(self, issue: Issue, sections: tuple[SectionView, ...]) -> dict[str, object]:
        created = issue.created_at or issue.cutoff
        return {
            "ctx": self.ctx,
            "theme": self.ctx.theme,
            "issue": issue,
            "issue_label": f"Issue {issue.number}",
            "issue_date": self._date_label(created),
            "sections": sections,
            "post_count": post_count(sections),
            "topic_names": topic_names(sections),
            "titles": [c.title for s in sections for c in s.cards],
            "image_width": CARD_IMAGE_WIDTH,
            "topic_anchor": topic_anchor,
            "hero_fit": hero_fit,
            "hero_max_height": HERO_MAX_HEIGHT,
        }

    def texts(self, issue: Issue, sections: tuple[SectionView, ...]) -> SegmentTexts:
        values = self.values(issue, sections)
        preheader = _one_line(_render(self.preheader_template, values, "preheader", issue))
        if len(preheader) > PREHEADER_LIMIT:
            preheader = preheader[: PREHEADER_LIMIT - 1].rsplit(" ", 1)[0] + "…"
        return SegmentTexts(intro_text(sections), preheader, topic_names(sections))

    def subject(self, issue: Issue, sections: tuple[SectionView, ...]) -> str:
        values = self.values(issue, sections)
        return _one_line(_render(self.subject_template, values, "subject", issue))

    @cached_property
    def text_template(self) -> Template:
        """Looked up once: Jinja's lookup checks the file's time on disk each call, a
        ``stat`` per variant of a send."""
        return self.env.get_template(TEXT_TEMPLATE)

    @cached_property
    def _parts(self) -> dict[tuple[object, ...], Markup]:
        return {}

    def _part(self, template: str, key: tuple[object, ...], **values: object) -> Markup:
        """A piece of the text email rendered once per issue and kept under ``key``: each
        topic's part (the same section, with the same cards and "more" line, is in many
        variants: rendering the whole text part for each one was half of a variant's time)
        and the editor's note (an include made Jinja look the partial up, a ``stat``, for
        every variant). Markup: a topic's part holds its unsubscribe token, which the
        template's finalize would otherwise break."""
        found = self._parts.get(key)
        if found is None:
            text = self.env.get_template(template).render(**values)
            found = self._parts[key] = trusted(text)
        return found

    def text(self, issue: Issue, sections: tuple[SectionView, ...]) -> str:
        tokens = _text_tokens(issue.topic_slugs)
        values = self.values(issue, sections)
        return self.text_template.render(
            values,
            intro=intro_text(sections),
            tokens=tokens,
            section_text=lambda section: self._part(
                SECTION_TEXT_TEMPLATE, (issue.topic_slugs, section), section=section, tokens=tokens
            ),
            note_text=self._part(NOTE_TEXT_TEMPLATE, (issue.note,), issue=issue),
        )

    def document(
        self,
        issue: Issue,
        sections: tuple[SectionView, ...],
        texts: SegmentTexts | None,
        rest: int = 0,
        archive: ArchiveLinks | None = None,
    ) -> str:
        """One full compile: Jinja2 → MJML → HTML → inlined CSS. Block markers are kept.

        ``texts`` None compiles the shell: markers instead of the per-segment texts, and every
        ending of every topic (with a "more" link, without, collapsed) and the line counting
        the topics left out. ``rest``: that count, for a segment's own compile. ``archive``
        compiles the web-archive page: no greeting, no personal link, a footer for someone who
        is not (yet) a reader.
        """
        shell = texts is None
        more_label: Callable[[SectionView], object] = (
            (lambda s: trusted(more_marker(s.topic.slug))) if shell else (lambda s: s.more)
        )
        source = self.env.get_template(HTML_TEMPLATE).render(
            self.values(issue, sections),
            intro=trusted(INTRO_MARKER) if texts is None else texts.intro,
            preheader=trusted(PREHEADER_MARKER) if texts is None else texts.preheader,
            segment_topics=trusted(TOPICS_MARKER) if texts is None else texts.topics,
            tokens=_html_tokens(issue.topic_slugs),
            shell=shell,
            more_label=more_label,
            rest_count=trusted(REST_MARKER) if shell else rest,
            archive=archive,
        )
        return inline_css(compile_mjml(source, HTML_TEMPLATE))


@dataclass(frozen=True)
class Fitted:
    """A segment's email fitted to the budget."""

    sections: tuple[SectionView, ...]
    """The sections in the email: whole, trimmed or collapsed."""
    folded: tuple[SectionView, ...]
    """Collapsed sections left out of the email but for the line that counts them."""
    html: str
    texts: SegmentTexts
    sent_bytes: int
    """The most bytes the HTML can have once personalized (bound links, longest values)."""
    whole: tuple[SectionView, ...]
    """The segment's sections before fitting: every card it is owed."""


@dataclass(frozen=True)
class RenderedIssue:
    """The issue compiled once; :meth:`variant` assembles any segment's email from it."""

    issue: Issue
    renderer: Renderer
    cut: Cut
    budget: int = HTML_BUDGET_BYTES

    @property
    def ctx(self) -> EmailContext:
        return self.renderer.ctx

    @property
    def env(self) -> Environment:
        return self.renderer.env

    @cached_property
    def cards(self) -> dict[int, CardView]:
        return cards_of(self.issue, self.ctx.zone, self.ctx.locale)

    def sections(self, key: Owed | TopicSet) -> tuple[SectionView, ...]:
        return segment_sections(self.issue, key, self.cards, self.ctx.topic_urls)

    @cached_property
    def growth(self) -> Growth:
        return Growth(self.ctx.public_url)

    @cached_property
    def _shell_growth(self) -> int:
        return self.growth.of(self.cut.shell)

    @cached_property
    def _block_growth(self) -> dict[str, int]:
        return {}

    def _grown(self, block: str) -> int:
        grown = self._block_growth.get(block)
        if grown is None:
            grown = self._block_growth[block] = self.growth.of(self.cut.blocks[block])
        return grown

    def _section_cost(self, section: SectionView) -> int:
        """Its bytes in the email at the most once personalized."""
        names = section_blocks(section)
        return self.cut.section_bytes(section) + sum(self._grown(name) for name in names)

    def _rest_cost(self, rest: int) -> int:
        return self.cut.rest_bytes(rest) + (self._grown(REST_BLOCK) if rest else 0)

    def fit(self, key: Owed | TopicSet, budget: int | None) -> Fitted:
        """The segment's email within ``budget`` bytes once personalized for any reader (None:
        no budget, every card: the archive page). See the module's docstring for the order."""
        full = self.sections(key)
        sections = list(full)
        texts = self.renderer.texts(self.issue, full)
        costs = [self._section_cost(s) for s in sections]
        size = self.cut.base_bytes(texts) + self._shell_growth + sum(costs)
        folded: list[SectionView] = []
        if budget is not None:

            def change(i: int, section: SectionView) -> None:
                nonlocal size
                sections[i] = section
                cost = self._section_cost(section)
                size += cost - costs[i]
                costs[i] = cost

            while size > budget and (largest := largest_section(tuple(sections))) is not None:
                change(largest, sections[largest].trimmed(1))
            for i in reversed(range(len(sections))):
                if size <= budget:
                    break
                change(i, sections[i].collapse(self.ctx.archive_url))
            while size > budget and sections:
                size -= costs.pop() + self._rest_cost(len(folded))
                folded.insert(0, sections.pop())
                size += self._rest_cost(len(folded))
            if size > budget:
                raise DigestError(
                    f"the email of {self.ctx.digest_name!r} is {size:,} bytes before any topic "
                    f"is in it, over the size budget of {budget:,}: its header and footer "
                    "(site name, postal address, templates) are too long",
                    where="render",
                )
        html = assemble(self.cut, sections, texts, len(folded))
        return Fitted(tuple(sections), tuple(folded), html, texts, size, full)

    def fitted(self, key: Owed | TopicSet) -> tuple[tuple[SectionView, ...], str, SegmentTexts]:
        """The segment's sections in the email, its HTML and texts, fitted to the budget."""
        fit = self.fit(key, self.budget)
        return fit.sections, fit.html, fit.texts

    def variant(self, key: Owed | TopicSet) -> Variant:
        return self._variant(Owed.of(key), self.fit(key, self.budget))

    def archive(self) -> Variant:
        """The issue's web-archive page: every topic with every card, whatever its size."""
        key = Owed(frozenset(self.issue.topic_slugs))
        return self._variant(key, self.fit(key, None))

    def _variant(self, key: Owed, fit: Fitted) -> Variant:
        full = {s.topic.slug: s for s in fit.whole}
        shown = fit.sections + fit.folded
        trimmed = {
            s.topic.slug: len(full[s.topic.slug].cards) - len(s.cards)
            for s in shown
            if not s.collapsed and len(full[s.topic.slug].cards) != len(s.cards)
        }
        return Variant(
            key=key.topics,
            subject=self.renderer.subject(self.issue, shown),
            html=fit.html,
            text=self.renderer.text(self.issue, shown),
            trimmed=trimmed,
            collapsed=tuple(s.topic.slug for s in shown if s.collapsed),
            sent_bytes=fit.sent_bytes,
            since=key.since,
        )

    def subject(self, sections: tuple[SectionView, ...]) -> str:
        return self.renderer.subject(self.issue, sections)

    def archive_page(self, links: ArchiveLinks) -> str:
        """The web-archive page ("view in browser"): every topic and every card (a web page
        has no clip limit), no greeting and no personal link, the content in a ``<main>``
        landmark. One full compile: call it once per issue and keep the result."""
        sections = self.sections(frozenset(self.issue.topic_slugs))
        texts = self.renderer.texts(self.issue, sections)
        html = strip_markers(self.renderer.document(self.issue, sections, texts, archive=links))
        if "%%" in html:
            raise DigestError("the web-archive page holds a token", where=HTML_TEMPLATE)
        return main_landmark(html)


_BODY_OPEN = re.compile(r"<body\b[^>]*>")


def main_landmark(html: str) -> str:
    """The compiled page with everything in its body inside one ``<main>``: MJML has no
    element for it (an unbalanced ``mj-raw`` does not survive mrml's parser), and a web page
    without a main landmark leaves screen-reader users no way to skip to the content."""
    opening = _BODY_OPEN.search(html)
    closing = html.rfind("</body>")
    if opening is None or closing < opening.end() or html.count("</body>") != 1:
        raise DigestError("the compiled page has no single <body>", where=HTML_TEMPLATE)
    start = opening.end()
    return f"{html[:start]}<main>{html[start:closing]}</main>{html[closing:]}"


def render_issue(
    issue: Issue,
    ctx: EmailContext,
    env: Environment | None = None,
    budget: int = HTML_BUDGET_BYTES,
) -> RenderedIssue:
    renderer = Renderer(ctx, env or make_environment())
    sections = all_sections(issue, cards_of(issue, ctx.zone, ctx.locale), ctx.topic_urls)
    # Every topic compiles with a "more" link (its count is a marker) and, via the shell's
    # second ending, without one; a section's real count is filled in per segment.
    shell_sections = tuple(s if s.more else _with_marker_more(s) for s in sections)
    whole = renderer.document(issue, shell_sections, None)
    pieces = cut(whole)
    check_blocks(pieces, shell_sections)
    return RenderedIssue(issue, renderer, pieces, budget)


def _with_marker_more(section: SectionView) -> SectionView:
    return replace(section, more=1)
