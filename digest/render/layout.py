"""What a segment's email shows, as plain values for the templates. Pure.

A post in two topics is shown once per email: in the first of the reader's topics (in the
digest's order) that holds it. A section left without posts is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from digest.models import HeroImage, Issue, StoredPost, Topic, TopicSet


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


def date_label(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local.day} {local:%B %Y}"


def card(post: StoredPost, zone: ZoneInfo) -> CardView:
    p = post.post
    return CardView(
        id=post.id,
        title=p.title,
        url=p.url,
        excerpt=p.excerpt,
        author=p.author,
        date_label=date_label(p.published_at, zone),
        reading_minutes=p.reading_minutes,
        image=p.image,
    )


def all_sections(issue: Issue, zone: ZoneInfo) -> tuple[SectionView, ...]:
    """Every section with every post: the whole issue, compiled once."""
    return tuple(
        SectionView(s.topic, tuple(card(p, zone) for p in s.posts)) for s in issue.sections
    )


def segment_sections(issue: Issue, key: TopicSet, zone: ZoneInfo) -> tuple[SectionView, ...]:
    shown: set[int] = set()
    out = []
    for section in issue.sections:
        if section.topic.slug not in key:
            continue
        cards = []
        for post in section.posts:
            if post.id not in shown:
                shown.add(post.id)
                cards.append(card(post, zone))
        if cards:
            out.append(SectionView(section.topic, tuple(cards)))
    return tuple(out)


def join_names(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def post_count(sections: tuple[SectionView, ...]) -> int:
    return sum(len(s.cards) for s in sections)


def intro_text(sections: tuple[SectionView, ...]) -> str:
    count = post_count(sections)
    noun = "post" if count == 1 else "posts"
    names = join_names([s.topic.name for s in sections])
    return f"here {'is' if count == 1 else 'are'} {count} new {noun} from {names}."


def preheader_text(sections: tuple[SectionView, ...], limit: int = 110) -> str:
    titles = [c.title for s in sections for c in s.cards]
    text = " · ".join(titles)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
