"""MJML → HTML with mrml (the Rust port of MJML; see DESIGN for why not the pure-Python one).

mrml writes every attribute value it serialises with Rust's ``Debug`` formatting for strings
(``RenderBuffer::push_attribute`` formats ``{value:?}``), not with HTML escaping: a backslash
comes out as ``\\\\``, a tab as ``\\t``, and every character Rust deems not printable or a
grapheme extender (zero-width space, ZWJ, variation selectors, soft hyphen, no-break space,
RTL mark, combining accents, …) as the literal text ``\\u{200b}``. Text between tags is written
as it came. :func:`unescape_attributes` undoes exactly that formatting inside the tags mrml
wrote, so every ``alt``, ``title`` and ``aria-label`` holds the characters the template gave it.
"""

from __future__ import annotations

import re

import mrml

from digest.errors import DigestError

# No web fonts: the default would add a Google Fonts <link> to every email.
_RENDER_OPTIONS = mrml.RenderOptions(fonts={})

# One escape of Rust's string Debug format: \u{hex}, or a backslash before one character.
_RUST_ESCAPE = r"\\(?:u\{[0-9a-fA-F]{1,6}\}|[\\\"'nrt0])"
# A double-quoted attribute value as Debug writes it: no bare quote or backslash inside.
_VALUE = rf'"(?:[^"\\]|{_RUST_ESCAPE})*"'
# A start tag: user text never holds a bare "<" (Jinja escapes it), so "<" + letter is markup.
_TAG = re.compile(rf"<[A-Za-z][^\s/>]*(?:\s+[^\s\"'=<>/]+(?:={_VALUE})?)*\s*/?>")
_ESCAPED_VALUE = re.compile(rf"=({_VALUE})")
_ONE_ESCAPE = re.compile(_RUST_ESCAPE)
# Characters an HTML parser would not give back as written inside an attribute value.
_SIMPLE = {"\\": "\\", '"': "&quot;", "'": "'", "n": "\n", "t": "\t", "r": "&#13;", "0": "&#65533;"}


def _one(match: re.Match[str]) -> str:
    escape = match.group(0)
    if escape[1] == "u":
        char = chr(int(escape[3:-1], 16))
        # A bare CR would read as LF; C1 controls are written as they are (UTF-8), never
        # as references, which HTML maps to windows-1252 punctuation.
        return "&#13;" if char == "\r" else "&#65533;" if char == "\0" else char
    return _SIMPLE[escape[1]]


def _value(match: re.Match[str]) -> str:
    quoted = match.group(1)
    if "\\" not in quoted:
        return match.group(0)
    return "=" + _ONE_ESCAPE.sub(_one, quoted)


def _tag(match: re.Match[str]) -> str:
    tag = match.group(0)
    return _ESCAPED_VALUE.sub(_value, tag) if "\\" in tag else tag


def unescape_attributes(html: str) -> str:
    """mrml's output with Rust's string escapes in attribute values turned back into the
    characters they stand for (``"`` as ``&quot;``, the rest as themselves)."""
    return _TAG.sub(_tag, html) if "\\" in html else html


def compile_mjml(source: str, template: str = "email") -> str:
    try:
        html = str(mrml.to_html(source, render_options=_RENDER_OPTIONS).content)
    except Exception as err:  # mrml raises plain exceptions with the parser's message
        raise DigestError(f"MJML does not compile: {err}", where=template) from None
    return unescape_attributes(html)
