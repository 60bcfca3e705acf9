"""What a segment's email shows, as plain values for the templates. Pure.

A segment's sections are the issue's, restricted to the topics its readers are owed and to
the posts released after their watermark (:class:`~digest.models.Owed`), each topic capped
at the issue's ``per_topic`` with the rest counted in its "more" link. A post in two topics is
shown once per email: in the first of the reader's topics (in the digest's order) that holds
it. A section left without posts is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date

from digest.models import HeroImage, Issue, Owed, StoredPost, Topic, TopicSet


@dataclass(frozen=True)
class CardView:
    id: int
    title: str
    url: str
    excerpt: str
    author: str | None
    date_label: str
    reading_minutes: int
    image: HeroImage | None


@dataclass(frozen=True)
class SectionView:
    topic: Topic
    cards: tuple[CardView, ...]
    more: int = 0
    """New posts of the topic not shown: over the digest's cap, or trimmed to fit the size."""
    more_url: str = ""
    collapsed: bool = False
    """No heading and no cards: one "more" line to the topic on the issue's web-archive page
    (the size budget left no room for even one card)."""

    def without_more(self) -> SectionView:
        return replace(self, more=0)

    def collapse(self, archive_url: str) -> SectionView:
        """Every card moved into one "more" link to the topic on the web-archive page."""
        return replace(
            self,
            cards=(),
            more=len(self.cards) + self.more,
            more_url=f"{archive_url}#{topic_anchor(self.topic.slug)}",
            collapsed=True,
        )

    def trimmed(self, count: int) -> SectionView:
        """The last ``count`` cards moved into the "more" link."""
        kept = len(self.cards) - count
        return replace(self, cards=self.cards[:kept], more=self.more + count)


def topic_anchor(slug: str) -> str:
    """The id of a topic's heading: where a collapsed topic's link leads on the archive page."""
    return f"topic-{slug}"


def date_label(moment: datetime, zone: ZoneInfo, locale: str = "en") -> str:
    return format_date(moment.astimezone(zone), format="long", locale=locale)


def card(post: StoredPost, zone: ZoneInfo, locale: str) -> CardView:
    """The post's card, its texts within :class:`~digest.models.FieldLimits` whatever the
    database holds (a row stored before gather bounded them)."""
    p = post.post.within_limits()
    return CardView(
        id=post.id,
        title=p.title,
        url=p.url,
        excerpt=p.excerpt,
        author=p.author,
        date_label=date_label(p.published_at, zone, locale),
        reading_minutes=p.reading_minutes,
        image=p.image,
    )


def cards_of(issue: Issue, zone: ZoneInfo, locale: str) -> dict[int, CardView]:
    """Every post's card, made once per issue (dates formatted in the digest's zone and locale)."""
    return {p.id: card(p, zone, locale) for s in issue.sections for p in s.posts}


def all_sections(
    issue: Issue, cards: dict[int, CardView], more_urls: dict[str, str]
) -> tuple[SectionView, ...]:
    """Every section with every post: the whole issue, compiled once."""
    return tuple(
        SectionView(
            s.topic,
            tuple(cards[p.id] for p in s.posts),
            s.more,
            more_urls.get(s.topic.slug, ""),
        )
        for s in issue.sections
    )


def owed_posts(issue: Issue, key: Owed | TopicSet) -> dict[str, tuple[tuple[StoredPost, ...], int]]:
    """Topic → (the posts a segment's email may show in it, how many more it is owed there):
    the posts released after the segment's watermark, the first ``per_topic`` of them."""
    owed = Owed.of(key)
    since = owed.since if owed.since is not None else issue.release_base
    out: dict[str, tuple[tuple[StoredPost, ...], int]] = {}
    for section in issue.sections:
        if section.topic.slug not in owed.topics:
            continue
        posts = section.posts
        if since is not None and issue.releases:
            posts = tuple(p for p in posts if issue.releases.get(p.id, since) > since)
        if issue.per_topic is None:
            out[section.topic.slug] = (posts, section.more)
        else:
            capped = posts[: issue.per_topic]
            out[section.topic.slug] = (capped, len(posts) - len(capped))
    return out


def segment_sections(
    issue: Issue,
    key: Owed | TopicSet,
    cards_by_id: dict[int, CardView],
    more_urls: dict[str, str],
) -> tuple[SectionView, ...]:
    shown: set[int] = set()
    out = []
    owed = owed_posts(issue, key)
    for section in issue.sections:
        if section.topic.slug not in owed:
            continue
        posts, more = owed[section.topic.slug]
        cards = []
        for post in posts:
            if post.id not in shown:
                shown.add(post.id)
                cards.append(cards_by_id[post.id])
        if cards:
            url = more_urls.get(section.topic.slug, "")
            out.append(SectionView(section.topic, tuple(cards), more, url))
    return tuple(out)


def largest_section(sections: tuple[SectionView, ...]) -> int | None:
    """The section with the most cards (the first such on a tie), or None when every section
    is down to one card: where trimming takes its next card from."""
    largest = max(range(len(sections)), key=lambda i: len(sections[i].cards), default=None)
    if largest is None or len(sections[largest].cards) <= 1:
        return None
    return largest


def trim_largest(sections: tuple[SectionView, ...]) -> tuple[SectionView, ...] | None:
    """One card fewer, taken from the end of the section with the most cards (the first such
    section on a tie); None when every section is down to one card."""
    largest = largest_section(sections)
    if largest is None:
        return None
    return tuple(s.trimmed(1) if i == largest else s for i, s in enumerate(sections))


MAX_LISTED_TOPICS = 6
"""Topic names a sentence lists (intro, footer) before it counts the rest: the texts stay
bounded whatever the number of topics, and so does the email."""


def join_names(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    if len(names) > MAX_LISTED_TOPICS:
        rest = len(names) - (MAX_LISTED_TOPICS - 1)
        return f"{', '.join(names[: MAX_LISTED_TOPICS - 1])} and {rest} other topics"
    return f"{', '.join(names[:-1])} and {names[-1]}"


def post_count(sections: tuple[SectionView, ...]) -> int:
    return sum(len(s.cards) + s.more for s in sections)


def topic_names(sections: tuple[SectionView, ...]) -> str:
    return join_names([s.topic.name for s in sections])


def intro_text(sections: tuple[SectionView, ...]) -> str:
    count = post_count(sections)
    noun = "post" if count == 1 else "posts"
    return f"here {'is' if count == 1 else 'are'} {count} new {noun} from {topic_names(sections)}."
