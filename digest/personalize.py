"""personalize: filling a variant's neutral tokens with one recipient's values.

The filler splits a template once at its tokens and then only joins strings, so filling costs a
few microseconds and a value can never introduce a token of its own (``str.replace`` chained per
token would rescan values it has just inserted). HTML tokens get HTML-escaped values; the text
part and the subject have tokens of their own and get raw values.

Tokens: ``%%first_name%%``, ``%%email%%``, ``%%unsubscribe_url%%``, ``%%preferences_url%%`` and,
per topic, ``%%unsubscribe_topic:SLUG%%``; the text forms end in ``_text``
(``%%first_name_text%%``, ``%%unsubscribe_topic_text:SLUG%%``).

For sending, :func:`bind_links` turns every link token into its URL around one
``%%manage_token%%``: a recipient then needs five values (name and address in both forms and the
token), not one signed URL per link, which keeps SendGrid payloads and signing cost small.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from subscribers.names import MAX_NAME_LENGTH

FIELDS = ("first_name", "email", "unsubscribe_url", "preferences_url")
TOPIC_FIELD = "unsubscribe_topic"
MANAGE_TOKEN = "%%manage_token%%"  # noqa: S105 (a placeholder, not a secret)
"""The recipient's signed token (URL-safe: the same value in HTML and text)."""

HTML_TOKENS = {name: f"%%{name}%%" for name in FIELDS}
TEXT_TOKENS = {name: f"%%{name}_text%%" for name in FIELDS}

_TOKEN = re.compile(r"%%([a-z_]+)(?::([a-z0-9-]+))?%%")
_NAMES = {*FIELDS, *(f"{n}_text" for n in FIELDS), "manage_token"}
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


def link_urls(public_url: str) -> dict[str, str]:
    """Where each link of an email leads, around the recipient's manage token."""
    return {
        "unsubscribe_url": f"{public_url}/unsubscribe/{MANAGE_TOKEN}",
        "preferences_url": f"{public_url}/preferences/{MANAGE_TOKEN}",
        TOPIC_FIELD: f"{public_url}/unsubscribe/{MANAGE_TOKEN}/topic/",
    }


def bind_links(template: str, public_url: str) -> str:
    """The template with its link tokens replaced by their URLs, the manage token left in.

    Name and address tokens stay as they are; HTML link tokens get an escaped URL. One pass
    of the token pattern: a send of many small segments binds every variant it sends."""
    urls = link_urls(public_url)

    def bound(match: re.Match[str]) -> str:
        name, slug = match.group(1), match.group(2)
        base = name.removesuffix("_text")
        if base not in urls or not _ours(match):
            return match.group(0)
        url = urls[base] + (slug or "")
        return url if name.endswith("_text") else html.escape(url, quote=True)

    return _TOKEN.sub(bound, template)


MAX_EMAIL_LENGTH = 320
"""Characters: the column's size (every way in validates to at most 254)."""
MAX_MANAGE_TOKEN_LENGTH = 19 + 1 + 7 + 1 + 43
"""``<id>.<timestamp>.<signature>`` at its longest: a 64-bit id (19 digits), a timestamp of 5
bytes in URL-safe base64 (7 characters: until the year 36812), an HMAC-SHA256 (43)."""
_WIDEST_HTML = "&quot;"
"""What one character of a value can become in HTML at most: six bytes (a double quote;
UTF-8 takes four at most)."""
_WIDEST_TEXT = "\U0001f600"
"""Four bytes in UTF-8: the most one character takes in a text part."""


def longest_values() -> dict[str, str]:
    """The personal values that make a filled template as large as any reader can: the
    longest first name (a name's first word; the name rule allows 200 characters), the
    longest address and token, each character the widest it can be once escaped."""
    return {
        HTML_TOKENS["first_name"]: _WIDEST_HTML * MAX_NAME_LENGTH,
        TEXT_TOKENS["first_name"]: _WIDEST_TEXT * MAX_NAME_LENGTH,
        HTML_TOKENS["email"]: _WIDEST_HTML * MAX_EMAIL_LENGTH,
        TEXT_TOKENS["email"]: _WIDEST_TEXT * MAX_EMAIL_LENGTH,
        MANAGE_TOKEN: "0" * MAX_MANAGE_TOKEN_LENGTH,
    }


@dataclass
class Growth:
    """The most bytes personalizing can add to a piece of a variant, for links bound to
    ``public_url`` (:func:`bind_links`) and the longest values (:func:`longest_values`): what
    the size budget must leave room for. Each distinct token is worked out once, by binding
    and filling it the way a send does."""

    public_url: str
    _per_token: dict[str, int] = field(default_factory=dict)

    def token(self, token: str) -> int:
        grown = self._per_token.get(token)
        if grown is None:
            bound = compile_template(bind_links(token, self.public_url))
            filled = bound.fill(longest_values())
            grown = self._per_token[token] = _bytes(filled) - _bytes(token)
        return grown

    def of(self, text: str) -> int:
        if "%%" not in text:
            return 0
        return sum(self.token(m.group(0)) for m in _TOKEN.finditer(text) if _ours(m))


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def recipient_values(first_name: str, email: str, manage_token: str) -> dict[str, str]:
    """One recipient's values for a template passed through :func:`bind_links`."""
    return {
        HTML_TOKENS["first_name"]: html.escape(first_name, quote=True),
        TEXT_TOKENS["first_name"]: first_name,
        HTML_TOKENS["email"]: html.escape(email, quote=True),
        TEXT_TOKENS["email"]: email,
        MANAGE_TOKEN: manage_token,
    }
