"""MJML → HTML with mrml (the Rust port of MJML; see DESIGN for why not the pure-Python one)."""

from __future__ import annotations

import mrml

from digest.errors import DigestError

# No web fonts: the default would add a Google Fonts <link> to every email.
_RENDER_OPTIONS = mrml.RenderOptions(fonts={})


def compile_mjml(source: str, template: str = "email") -> str:
    try:
        return str(mrml.to_html(source, render_options=_RENDER_OPTIONS).content)
    except Exception as err:  # mrml raises plain exceptions with the parser's message
        raise DigestError(f"MJML does not compile: {err}", where=template) from None
