"""CSS inlining with premailer, with the settings that keep an email intact.

premailer's defaults would fetch remote stylesheets, strip ``!important`` (which the mobile
media queries need) and drop the doctype; here nothing is fetched, ``!important`` stays and the
doctype is put back.
"""

from __future__ import annotations

import logging

from premailer import Premailer

DOCTYPE = "<!doctype html>"


# MJML's reset block (``#outlook a``, ``table, td {…}``, ``img {…}``) is meant to stay in the head;
# inlined, it would repeat on every table cell and add about a kilobyte per card.
_RESET_STYLE = '<style type="text/css">\n#outlook a'


def inline_css(html: str) -> str:
    html = html.replace(
        _RESET_STYLE, '<style type="text/css" data-premailer="ignore">\n#outlook a', 1
    )
    inliner = Premailer(
        html,
        allow_network=False,
        keep_style_tags=True,
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    )
    out: str = inliner.transform()
    if not out.lstrip().lower().startswith("<!doctype"):
        out = f"{DOCTYPE}\n{out}"
    return out
