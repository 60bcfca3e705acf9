"""Refusing XML that declares entities or names an external DTD, however it is written.

Feeds never need their own entities, and a few nested ones expand to gigabytes ("billion
laughs"). feedparser has two parsers, so there are two guards:

- its strict parser is expat, reached through a SAX driver that feedparser picks from
  ``feedparser.api.PREFERRED_XML_PARSERS``. :func:`install` makes that driver defusedxml's,
  which raises on any entity declaration (general or parameter, internal or external) and any
  external reference, wherever expat meets it: after comments, past any padding, in any
  encoding expat reads;
- its fallback parser (for documents expat gives up on) expands the entities feedparser's own
  regex lifted from the DTD, and expat may give up before it reaches the DTD, so defusedxml
  never sees them. :func:`refusal` therefore looks at the text *as feedparser will read it*:
  decoded by feedparser's own ``convert_to_utf8`` (byte-order mark, HTTP charset, XML
  declaration, UTF-16 and UTF-32), then searched whole (no look-ahead window) for an entity
  declaration, and its prolog for a DOCTYPE naming an external DTD (never fetched, and refused
  so that no feed depends on what it would declare).

:func:`install` also bounds one quadratic regex of feedparser's (see :data:`AUTHOR_SCAN_CHARS`).
"""

from __future__ import annotations

import re
from typing import Any

import feedparser.api
import feedparser.mixin
from feedparser.encodings import convert_to_utf8

from digest.models import FieldLimits

DEFUSED_SAX_DRIVER = "defusedxml.expatreader"
AUTHOR_SCAN_CHARS = FieldLimits.AUTHOR + 100
"""How much of an author string feedparser 6.0 may search for an e-mail address. Its regex
takes quadratic time on a long run of letters (20,000 of them: 3 s; a 10 MB ``<author>``:
days), and we keep 200 characters of an author anyway."""

_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.I)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_:]")
_EXTERNAL_DTD = re.compile(rb"<!DOCTYPE\s+[^\s\[>]+\s+(SYSTEM|PUBLIC)\b", re.I)
_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")


def install() -> None:
    """Make feedparser's strict parser defusedxml's expat driver and bound its author scan
    (process-wide, idempotent).

    The list is replaced, not prepended to: any other driver it named (``drv_libxml2``) would
    parse without defusedxml's guards if it happened to be installed.
    """
    feedparser.api.PREFERRED_XML_PARSERS[:] = [DEFUSED_SAX_DRIVER]
    mixin: Any = feedparser.mixin._FeedParserMixin
    original = mixin._sync_author_detail
    if getattr(original, "bounded", False):
        return

    def bounded_sync_author_detail(parser: Any, key: str = "author") -> None:
        context = parser._get_context()
        value = context.get(key)
        if isinstance(value, str) and len(value) > AUTHOR_SCAN_CHARS:
            context[key] = value[:AUTHOR_SCAN_CHARS]
        original(parser, key)

    bounded_sync_author_detail.bounded = True  # type: ignore[attr-defined]
    mixin._sync_author_detail = bounded_sync_author_detail


def as_feedparser_reads(body: bytes, content_type: str | None) -> bytes:
    """The document as UTF-8, decoded exactly as feedparser will decode it."""
    result: dict[str, Any] = {}
    headers = {"content-type": content_type or "application/xml"}
    decoded: bytes = convert_to_utf8(headers, body, result)
    return decoded


def refusal(body: bytes, content_type: str | None = None) -> str | None:
    """Why this document must not be parsed, or None: an entity declaration, more entries
    than :class:`~digest.models.FieldLimits` allows, an external DTD."""
    text = as_feedparser_reads(body, content_type)
    if _ENTITY_DECLARATION.search(text):
        return (
            "refused: the document declares its own XML entities (an entity-expansion attack "
            "looks like this; real feeds do not need them)"
        )
    entries = _ENTRY_START.finditer(text)
    if any(n >= FieldLimits.ENTRIES for n, _ in enumerate(entries)):
        return f"refused: the document holds more than {FieldLimits.ENTRIES} entries"
    first = _FIRST_ELEMENT.search(text)
    prolog = text[: first.start()] if first else text
    external = _EXTERNAL_DTD.search(prolog)
    if external:
        return (
            f"refused: the document names an external DTD ({external.group(1).decode()} "
            "identifier); feeds do not need one and it is never fetched"
        )
    return None
