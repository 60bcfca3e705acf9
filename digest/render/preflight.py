"""Preflight: what an editor should know about one variant's HTML before approving it.

Pure: HTML in, findings out. Checks, each chosen for a failure a reader would see:

- size against the clip limit: Gmail hides everything after about 102 KB of HTML behind
  "View entire message", footer and unsubscribe link included (an error over the budget, a
  warning above 90 % of it);
- images without an ``alt`` attribute (screen readers and image-blocking clients show
  nothing, or the file name); an empty ``alt`` is fine for decoration, but not on an image that
  is a link's only content, which would then be a link without a name;
- images without a ``width`` attribute (Outlook on Windows ignores CSS sizes and shows them
  at their natural size); a ``height`` attribute is not asked for: Yahoo turns a CSS
  ``height:auto`` into ``min-height:auto``, and then the attribute squashes a scaled image;
- image sources that are not http(s): ``file:``, ``data:`` and relative URLs do not load in
  inboxes;
- links that are not http(s), except ``mailto:`` (allowed: the List-Unsubscribe mailto and a
  "write to us" link open the reader's mail program, as they say); ``javascript:``, ``data:``,
  ``file:``, relative and ``#`` links are errors, as is a personal token left unfilled;
- features that target clients lack or support only in part (caniemail data, when
  configured), less those the templates use on purpose with a named fallback
  (:data:`digest.render.features.FALLBACKS`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from lxml import html as lxml_html

from digest.render.features import ENHANCEMENTS, email_features
from digest.render.size import HTML_BUDGET_BYTES, html_bytes

Level = Literal["error", "warning"]
WARN_SHARE = 0.9
LINK_SCHEMES = ("http", "https", "mailto")
IMAGE_SCHEMES = ("http", "https")
UNFILLED = re.compile(r"%%[a-z0-9_]+%%")
CLIENT_NAMES = {
    "gmail": "Gmail",
    "outlook": "Outlook",
    "apple-mail": "Apple Mail",
    "yahoo": "Yahoo",
}


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    examples: tuple[str, ...] = ()
    count: int = 1


@dataclass(frozen=True)
class Report:
    html_bytes: int
    budget: int
    findings: tuple[Finding, ...]
    client_support_checked: bool

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "warning")

    @property
    def share(self) -> float:
        return self.html_bytes / self.budget


@dataclass
class _Collector:
    found: dict[tuple[str, Level, str], list[str]] = field(default_factory=dict)

    def add(self, check: str, level: Level, message: str, example: str = "") -> None:
        self.found.setdefault((check, level, message), []).append(example)

    def findings(self) -> tuple[Finding, ...]:
        out = [
            Finding(check, level, message, tuple(dict.fromkeys(e for e in ex if e))[:3], len(ex))
            for (check, level, message), ex in self.found.items()
        ]
        return tuple(sorted(out, key=lambda f: (f.level != "error", f.check)))


def _short(url: str, limit: int = 80) -> str:
    """The end of a long URL: the file name tells which image it is."""
    return url if len(url) <= limit else "…" + url[-(limit - 1) :]


def _scheme(url: str) -> str:
    return urlsplit(url.strip()).scheme.lower()


def check_size(html: str, budget: int, out: _Collector) -> int:
    size = html_bytes(html)
    kib = f"{size / 1024:.1f} KiB of {budget / 1024:.0f} KiB"
    if size > budget:
        out.add("size", "error", f"HTML is {kib}: Gmail will clip it")
    elif size > budget * WARN_SHARE:
        out.add("size", "warning", f"HTML is {kib}: close to Gmail's clip limit")
    return size


def check_images(document: lxml_html.HtmlElement, out: _Collector) -> None:
    for image in document.iter("img"):
        src = image.get("src", "")
        alt = image.get("alt")
        if alt is None:
            out.add("alt text", "error", "image without alt text", _short(src))
        elif not alt.strip():
            link = next(image.iterancestors("a"), None)
            if link is not None and not link.text_content().strip():
                out.add("alt text", "error", "linked image with empty alt text", _short(src))
        if not image.get("width"):
            out.add("dimensions", "warning", "image without a width attribute", _short(src))
        if _scheme(src) not in IMAGE_SCHEMES:
            what = f"{_scheme(src)}: URL" if _scheme(src) else "relative URL"
            out.add(
                "images", "error", f"image from a {what}: inboxes will not load it", _short(src)
            )
        elif _only_here(src):
            out.add(
                "images",
                "warning",
                "image from this machine (localhost): only a reader on it can load it; set "
                "[site] public_url to the address readers reach",
                _short(src),
            )


def _only_here(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.endswith(".localhost") or host.startswith("127.")


def check_links(document: lxml_html.HtmlElement, out: _Collector) -> None:
    for link in document.iter("a"):
        href = (link.get("href") or "").strip()
        if UNFILLED.search(href):
            out.add("links", "error", "link with an unfilled token", _short(href))
        elif not href:
            out.add("links", "error", "link without a target", link.text_content().strip()[:60])
        elif _scheme(href) not in LINK_SCHEMES:
            kind = f"{_scheme(href)}: link" if _scheme(href) else "relative or # link"
            out.add("links", "error", f"{kind} (only http, https and mailto)", _short(href))


def check_support(
    html: str,
    unsupported: Mapping[str, set[tuple[str, str]]],
    allowed: Mapping[str, set[tuple[str, str]]],
    out: _Collector,
) -> None:
    for feature in sorted(email_features(html)):
        lacking = unsupported.get(feature, set()) - allowed.get(feature, set())
        if lacking:
            clients = ", ".join(
                f"{CLIENT_NAMES.get(client, client)} ({platform})"
                for client, platform in sorted(lacking)
            )
            out.add("client support", "warning", f"{feature} is not fully supported in {clients}")


def preflight(
    html: str,
    budget: int = HTML_BUDGET_BYTES,
    unsupported: Mapping[str, set[tuple[str, str]]] | None = None,
    allowed: Mapping[str, set[tuple[str, str]]] = ENHANCEMENTS,
) -> Report:
    """Check one email's HTML (with its tokens filled, as a reader gets it)."""
    out = _Collector()
    size = check_size(html, budget, out)
    document = lxml_html.document_fromstring(html)
    check_images(document, out)
    check_links(document, out)
    if unsupported is not None:
        check_support(html, unsupported, allowed, out)
    return Report(size, budget, out.findings(), unsupported is not None)
