"""The one rule for a reader's name, whichever way it comes in (the sign-up form, an import,
``digest subscribers add``) and wherever it goes out (the To header of every email, the
greeting).

A name ends up inside a mail header. A line break there starts a header of the sender's
choosing (a ``Bcc:``, or a blank line and a forged body); other control characters, line and
paragraph separators and text-direction overrides make the name show as something else than
was typed; and an RFC 2047 encoded word (``=?utf-8?q?…?=``) is decoded by mail programs, so the
name a reader sees is not the one stored, and may hold the very line breaks refused here. No
person's name needs any of these, so they are refused at the door with words that say which,
and a name refused by this rule never reaches a header (:func:`usable_name`).
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 200
"""Characters: room for any real name, and nothing like the 900 KB one an import once took."""

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Embeddings, overrides and isolates: they reorder what follows them (``\u202egnp.exe``
shows as ``exe.png``)."""

ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bBqQ]\?[^?\s]*\?=")
"""RFC 2047's shape (``=?charset?encoding?text?=``), which mail programs decode."""

_LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85")
"""What ``str.splitlines`` breaks at, besides the separators U+2028 and U+2029."""


def _character(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "")
    return f"{code} {name}" if name else code


def _character_problem(char: str) -> str | None:
    category = unicodedata.category(char)
    if char in _LINE_BREAKS or category in ("Zl", "Zp"):
        return f"contains a line break ({_character(char)})"
    if category == "Cc":
        return f"contains a control character ({_character(char)})"
    if char in BIDI_CONTROLS:
        return f"contains a text-direction control ({_character(char)})"
    if category == "Cs":
        return f"contains a broken character ({_character(char)})"
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a reader's name, in words for whoever typed it ("contains a line
    break (U+000A)"), or None when it may be kept. Callers put it after "the name" or "your
    name"."""
    if len(name) > MAX_NAME_LENGTH:
        return f"is too long ({len(name)} characters; at most {MAX_NAME_LENGTH})"
    if not (name.isascii() and name.isprintable()):
        # Printable ASCII, the usual name, has none of these: only other names are walked.
        for char in name:
            problem = _character_problem(char)
            if problem:
                return problem
    if "=?" in name and ENCODED_WORD.search(name):
        return (
            "contains an RFC 2047 encoded word (=?…?=), which mail programs would show "
            "decoded instead of as typed"
        )
    return None


def usable_name(name: str) -> str:
    """``name`` when the rule allows it, else the empty string: a name stored before the rule
    (or by a way in that forgot it) goes out as no name at all, the address alone, and its
    reader is greeted as anyone without a name."""
    return name if name_problem(name) is None else ""
