"""The Jinja2 environment for email templates: autoescaped, strict, and token-proof.

Personal values are filled in after rendering by :mod:`digest.personalize`, which looks for
``%%name%%`` tokens. Text from feeds or subscribers must never be able to spell one, so every
value printed by a template has ``%%`` broken by a zero-width space (invisible to readers).
Values wrapped in :class:`markupsafe.Markup` (our own tokens and markers) pass unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

TOKEN_GUARD = "%\u200b%"  # noqa: S105 (not a password)
# What no HTML or XML document may hold, and mrml refuses to parse (one such character in a
# title would fail the whole issue): C0 controls but tab and line breaks, lone surrogates
# (unencodable) and the noncharacters U+FFFE and U+FFFF. Dropped from every printed value, and
# carriage returns become line feeds (what an HTML parser reads them as anyway).
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def template_folder() -> Path:
    """``digest/templates`` inside an installed wheel, else the repository's ``templates/``."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "templates"
    if installed.is_dir():
        return installed
    return package.parent / "templates"


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    if "%%" not in value and value.isprintable():
        # Nothing to drop or guard (every character _UNWRITABLE matches, and \r, is
        # unprintable): most values, printed once per variant of a send.
        return value
    text = _UNWRITABLE.sub("", value).replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("%%", TOKEN_GUARD)


def _autoescape(name: str | None) -> bool:
    return name is not None and not name.endswith(".txt.j2")


SAFE_SCHEMES = ("http://", "https://", "file://", "mailto:")


def safe_url(value: Any) -> Any:
    """Links and images keep http(s), file (the local example site) and mailto URLs, and our
    own tokens; anything else (``javascript:``, ``data:``, …) becomes an inert ``#``."""
    if isinstance(value, Markup):
        return value
    text = str(value).strip()
    return text if text.lower().startswith(SAFE_SCHEMES) else "#"


def make_environment(override: Path | None = None) -> Environment:
    """Templates from ``override`` (a site's own folder) first, then the bundled ones."""
    folders = [str(override)] if override else []
    folders.append(str(template_folder()))
    env = Environment(
        loader=FileSystemLoader(folders),
        autoescape=_autoescape,  # noqa: S701 (on for all but *.txt.j2)
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["safe_url"] = safe_url
    env.tests["safe_url"] = lambda value: safe_url(value) != "#"
    return env
