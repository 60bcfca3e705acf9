"""Plain-text excerpts and reading time from untrusted feed HTML."""

from __future__ import annotations

import html
import math
import re

import nh3

WORDS_PER_MINUTE = 230
ELLIPSIS = "…"

# ``[^<>]*``, not ``[^>]*``: an unclosed ``<p`` must stop at the next tag, or a body of
# ``<p<p<p…`` makes every match attempt scan to the end (quadratic time on hostile feeds).
_BLOCK_TAGS = re.compile(
    r"</?(p|div|br|li|ul|ol|h[1-6]|blockquote|pre|tr|table|figure)\b[^<>]*>", re.I
)
_SPACE = re.compile(r"\s+")


def plain_text(fragment: str) -> str:
    """Tags dropped (scripts and styles with their content), entities decoded, spaces collapsed.

    Block tags become spaces first so that ``<p>a</p><p>b</p>`` reads "a b", not "ab".
    """
    spaced = _BLOCK_TAGS.sub(" ", fragment)
    stripped = nh3.clean(spaced, tags=set(), clean_content_tags={"script", "style"})
    return _SPACE.sub(" ", html.unescape(stripped)).strip()


def cut_words(text: str, max_words: int) -> str:
    """At most ``max_words`` words, cut at a word boundary, with an ellipsis when shortened."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    kept = " ".join(words[:max_words]).rstrip(",;:–—-.")
    return kept + ELLIPSIS


def reading_minutes(text: str) -> int:
    return max(1, math.ceil(len(text.split()) / WORDS_PER_MINUTE))
