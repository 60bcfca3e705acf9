"""personalize: filling a variant's neutral tokens with one recipient's values.

The filler splits a template once at its tokens and then only joins strings, so filling costs a
few microseconds and a value can never introduce a token of its own (``str.replace`` chained per
token would rescan values it has just inserted). HTML tokens get HTML-escaped values; the text
part and the subject have tokens of their own and get raw values.

Tokens: ``%%first_name%%``, ``%%email%%``, ``%%unsubscribe_url%%``, ``%%preferences_url%%`` and,
per topic, ``%%unsubscribe_topic:SLUG%%``; the text forms end in ``_text``
(``%%first_name_text%%``, ``%%unsubscribe_topic_text:SLUG%%``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FIELDS = ("first_name", "email", "unsubscribe_url", "preferences_url")
TOPIC_FIELD = "unsubscribe_topic"

HTML_TOKENS = {name: f"%%{name}%%" for name in FIELDS}
TEXT_TOKENS = {name: f"%%{name}_text%%" for name in FIELDS}

_TOKEN = re.compile(r"%%([a-z_]+)(?::([a-z0-9-]+))?%%")
_NAMES = {*FIELDS, *(f"{n}_text" for n in FIELDS)}
_TOPIC_NAMES = {TOPIC_FIELD, f"{TOPIC_FIELD}_text"}


def topic_token(slug: str, *, text: bool = False) -> str:
    return f"%%{TOPIC_FIELD}{'_text' if text else ''}:{slug}%%"


def _ours(match: re.Match[str]) -> bool:
    name, slug = match.group(1), match.group(2)
    return (slug is None and name in _NAMES) or (slug is not None and name in _TOPIC_NAMES)


@dataclass(frozen=True)
class Compiled:
    """Literal parts around the token slots: ``parts[0] + v(slots[0]) + parts[1] + …``."""

    parts: tuple[str, ...]
    slots: tuple[str, ...]

    def fill(self, values: Mapping[str, str]) -> str:
        out = [self.parts[0]]
        for slot, part in zip(self.slots, self.parts[1:], strict=True):
            out.append(values[slot])
            out.append(part)
        return "".join(out)


def compile_template(text: str) -> Compiled:
    parts: list[str] = []
    slots: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        if not _ours(match):
            continue
        parts.append(text[position : match.start()])
        slots.append(match.group(0))
        position = match.end()
    parts.append(text[position:])
    return Compiled(tuple(parts), tuple(slots))


def token_values(fields: Mapping[str, str], topic_urls: Mapping[str, str]) -> dict[str, str]:
    """Every token with its value: escaped for HTML tokens, raw for text tokens."""
    values: dict[str, str] = {}
    for name in FIELDS:
        raw = fields[name]
        values[HTML_TOKENS[name]] = html.escape(raw, quote=True)
        values[TEXT_TOKENS[name]] = raw
    for slug, url in topic_urls.items():
        values[topic_token(slug)] = html.escape(url, quote=True)
        values[topic_token(slug, text=True)] = url
    return values


def unfilled_tokens(text: str) -> list[str]:
    """Tokens left in a finished message: always a bug."""
    return [m.group(0) for m in _TOKEN.finditer(text) if _ours(m)]


def topic_tokens(slugs: Iterable[str], *, text: bool = False) -> dict[str, str]:
    return {slug: topic_token(slug, text=text) for slug in slugs}
