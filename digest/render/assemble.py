"""Cutting the once-compiled issue into a shell and blocks, and joining a segment's blocks.

The whole issue (every topic, every card, every topic ending with and without its "more" link)
goes through MJML and CSS inlining once. Templates wrap each piece in
``<!--digest:block:KIND:ID-->`` … ``<!--/digest:block-->`` comments, and the texts that differ
per segment are ``%%segment_…%%`` markers. A variant is the shell with its blocks joined in and
its markers replaced: string work, no compiling.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from digest.errors import DigestError
from digest.render.environment import TOKEN_GUARD
from digest.render.layout import SectionView

SECTIONS_SLOT = "<!--digest:sections-->"
INTRO_MARKER = "%%segment_intro%%"
PREHEADER_MARKER = "%%segment_preheader%%"
TOPICS_MARKER = "%%segment_topics%%"
REST_MARKER = "%%segment_rest%%"
"""How many of the segment's topics only the web-archive page shows (the ``rest`` block)."""
REST_BLOCK = "rest:topics"

_BLOCK = re.compile(r"<!--digest:block:([a-z-]+:[^>]+?)-->(.*?)<!--/digest:block-->", re.S)
_MARKERS = re.compile(r"<!--/?digest:[^>]*-->")
_SHELL_TEXTS = re.compile(
    "(" + "|".join(map(re.escape, (INTRO_MARKER, PREHEADER_MARKER, TOPICS_MARKER))) + ")"
)


def more_marker(slug: str) -> str:
    return f"%%segment_more:{slug}%%"


@dataclass(frozen=True)
class SegmentTexts:
    intro: str
    preheader: str
    topics: str


@dataclass(frozen=True)
class Cut:
    shell: str
    blocks: dict[str, str]

    @cached_property
    def _shell_bytes(self) -> tuple[int, dict[str, int]]:
        """Bytes of the shell without its slot, markers and texts; how often each text goes in."""
        bare = strip_markers(self.shell.replace(SECTIONS_SLOT, ""))
        counts = {m: bare.count(m) for m in (INTRO_MARKER, PREHEADER_MARKER, TOPICS_MARKER)}
        size = _bytes(bare) - sum(_bytes(m) * n for m, n in counts.items())
        return size, counts

    @cached_property
    def stripped_blocks(self) -> dict[str, str]:
        """The blocks without their markers."""
        return {name: strip_markers(body) for name, body in self.blocks.items()}

    @cached_property
    def shell_pieces(self) -> tuple[str, ...]:
        """The shell without its markers, split around the slot and the segment's texts (each
        piece that is one of them stands for it)."""
        before, after = self.shell.split(SECTIONS_SLOT, 1)
        pieces = [*_SHELL_TEXTS.split(strip_markers(before)), SECTIONS_SLOT]
        pieces += _SHELL_TEXTS.split(strip_markers(after))
        return tuple(piece for piece in pieces if piece)

    @cached_property
    def _block_bytes(self) -> dict[str, int]:
        return {name: _bytes(body) for name, body in self.stripped_blocks.items()}

    def measure(self, sections: Sequence[SectionView], texts: SegmentTexts, rest: int = 0) -> int:
        """The UTF-8 size :func:`assemble` would produce, computed without assembling."""
        size = self.base_bytes(texts) + sum(map(self.section_bytes, sections))
        return size + self.rest_bytes(rest)

    def base_bytes(self, texts: SegmentTexts) -> int:
        """The shell with the segment's texts: everything but the sections."""
        size, counts = self._shell_bytes
        size += counts[INTRO_MARKER] * _bytes(segment_text(texts.intro))
        size += counts[PREHEADER_MARKER] * _bytes(segment_text(texts.preheader))
        size += counts[TOPICS_MARKER] * _bytes(segment_text(texts.topics))
        return size

    def section_bytes(self, section: SectionView) -> int:
        """One section's blocks as :func:`assemble` joins them (its "more" count filled in):
        the size guard asks this for each section it trims or collapses."""
        names = section_blocks(section)
        size = sum(self._block_bytes[name] for name in names)
        if section.more:
            marker = more_marker(section.topic.slug)
            occurrences = self.blocks[names[-1]].count(marker)
            size += occurrences * (len(str(section.more)) - _bytes(marker))
        return size

    def rest_bytes(self, rest: int) -> int:
        if not rest:
            return 0
        occurrences = self.blocks[REST_BLOCK].count(REST_MARKER)
        return self._block_bytes[REST_BLOCK] + occurrences * (len(str(rest)) - len(REST_MARKER))


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def cut(compiled: str) -> Cut:
    blocks: dict[str, str] = {}
    first = last = None
    for match in _BLOCK.finditer(compiled):
        name, body = match.group(1), match.group(2)
        if name in blocks and blocks[name] != body:
            raise DigestError(f"block {name} renders differently in two places", where="render")
        blocks[name] = body
        first = match.start() if first is None else first
        last = match.end()
    if first is None or last is None:
        raise DigestError("the template marks no blocks (digest:block comments)", where="render")
    shell = compiled[:first] + SECTIONS_SLOT + compiled[last:]
    return Cut(shell, blocks)


def check_blocks(piece: Cut, sections: Sequence[SectionView]) -> None:
    """Every block the sections need came out of the compile, or a clear error now, before
    anything is sent, rather than a KeyError in the middle of a send."""
    needed = block_names(sections, rest=1) + [
        f"topic-{end}:{s.topic.slug}" for s in sections for end in ("end", "collapsed")
    ]
    missing = [name for name in needed if name not in piece.blocks]
    if missing:
        raise DigestError(
            f"the compiled email lost {len(missing)} of its blocks ({', '.join(missing[:5])}): "
            "a post's text or the template broke the HTML",
            where="render",
        )


def section_blocks(section: SectionView) -> list[str]:
    """A section's blocks in order; its ending (the block with its "more" count) is last."""
    slug = section.topic.slug
    if section.collapsed:
        return [f"topic-collapsed:{slug}"]
    names = [f"topic:{slug}", *(f"card:{c.id}" for c in section.cards)]
    names.append(f"topic-more:{slug}" if section.more else f"topic-end:{slug}")
    return names


def block_names(sections: Sequence[SectionView], rest: int = 0) -> list[str]:
    names = [name for section in sections for name in section_blocks(section)]
    return [*names, REST_BLOCK] if rest else names


def assemble(
    piece: Cut, sections: Sequence[SectionView], texts: SegmentTexts, rest: int = 0
) -> str:
    """The segment's email: its sections, then (``rest`` > 0) the line counting the topics
    only the web-archive page shows. Joined from pieces stripped and split once per issue
    (:attr:`Cut.stripped_blocks`, :attr:`Cut.shell_pieces`): a send of many small segments
    assembles thousands, and replacing markers across the whole email took most of it."""
    blocks = piece.stripped_blocks
    body: list[str] = []
    for section in sections:
        names = section_blocks(section)
        body.extend(blocks[name] for name in names[:-1])
        ending = blocks[names[-1]]
        if section.more:
            ending = ending.replace(more_marker(section.topic.slug), str(section.more))
        body.append(ending)
    if rest:
        body.append(blocks[REST_BLOCK].replace(REST_MARKER, str(rest)))
    values = {
        SECTIONS_SLOT: "".join(body),
        INTRO_MARKER: segment_text(texts.intro),
        PREHEADER_MARKER: segment_text(texts.preheader),
        TOPICS_MARKER: segment_text(texts.topics),
    }
    return "".join(values.get(part, part) for part in piece.shell_pieces)


def strip_markers(compiled: str) -> str:
    return _MARKERS.sub("", compiled)


def segment_text(text: str) -> str:
    """Escaped the way the HTML serializer escapes text, and unable to spell a token."""
    return html.escape(text.replace("%%", TOKEN_GUARD), quote=False)
