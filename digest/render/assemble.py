"""Cutting the once-compiled issue into a shell and blocks, and joining a segment's blocks.

The whole issue (every topic, every card) goes through MJML and CSS inlining once. Templates
wrap each topic heading, card and topic ending in ``<!--digest:block:KIND:ID-->`` …
``<!--/digest:block-->`` comments, and the per-segment texts are ``%%segment_…%%`` markers.
A variant is the shell with its blocks joined in: string work, no compiling.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from digest.errors import DigestError
from digest.render.environment import TOKEN_GUARD
from digest.render.layout import SectionView

SECTIONS_SLOT = "<!--digest:sections-->"
INTRO_MARKER = "%%segment_intro%%"
PREHEADER_MARKER = "%%segment_preheader%%"

_BLOCK = re.compile(r"<!--digest:block:([a-z-]+:[^>]+?)-->(.*?)<!--/digest:block-->", re.S)
_MARKERS = re.compile(r"<!--/?digest:[^>]*-->")


@dataclass(frozen=True)
class Cut:
    shell: str
    blocks: dict[str, str]


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


def block_names(sections: Sequence[SectionView]) -> list[str]:
    names = []
    for section in sections:
        names.append(f"topic:{section.topic.slug}")
        names.extend(f"card:{c.id}" for c in section.cards)
        names.append(f"topic-end:{section.topic.slug}")
    return names


def assemble(piece: Cut, sections: Sequence[SectionView], intro: str, preheader: str) -> str:
    body = "".join(piece.blocks[name] for name in block_names(sections))
    out = piece.shell.replace(SECTIONS_SLOT, body, 1)
    out = out.replace(INTRO_MARKER, _segment_text(intro))
    out = out.replace(PREHEADER_MARKER, _segment_text(preheader))
    return strip_markers(out)


def strip_markers(compiled: str) -> str:
    return _MARKERS.sub("", compiled)


def _segment_text(text: str) -> str:
    """Escaped the way the HTML serializer escapes text, and unable to spell a token."""
    return html.escape(text.replace("%%", TOKEN_GUARD), quote=False)
