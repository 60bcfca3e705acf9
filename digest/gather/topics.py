"""Which topics a gathered post belongs to. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class TopicMapping:
    """Either every post gets ``fixed``, or each post gets the topics its categories name."""

    fixed: str | None = None
    table: Mapping[str, str] = field(default_factory=dict)
    """casefolded category → topic slug: topic names and slugs, then the source's own rules."""
    keep_categories: bool = False
    """With no topics to map to (``digest inspect`` without a config): categories as they are."""

    @classmethod
    def one_topic(cls, slug: str) -> TopicMapping:
        return cls(fixed=slug)

    @classmethod
    def by_category(
        cls, topics: Iterable[tuple[str, str]], rules: Mapping[str, str]
    ) -> TopicMapping:
        table = {}
        for slug, name in topics:
            table[_key(slug)] = slug
            table[_key(name)] = slug
        table.update({_key(category): slug for category, slug in rules.items()})
        return cls(table=table)

    def topics_for(self, categories: Sequence[str]) -> tuple[str, ...]:
        if self.fixed is not None:
            return (self.fixed,)
        if self.keep_categories:
            return tuple(dict.fromkeys(categories)) or ("(none)",)
        found = (self.table.get(_key(c)) for c in categories)
        return tuple(dict.fromkeys(slug for slug in found if slug))
