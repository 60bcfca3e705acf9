"""The HTML and CSS features an email uses, named as caniemail.com names them.

Used to check a rendered email against client support data (which clients lack a feature),
so a template change that relies on something Outlook or Gmail ignores is caught.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lxml import html as lxml_html

# The clients whose support matters (caniemail's client and platform names). Outlook is
# classic Outlook on Windows ("windows"), Outlook for Mac ("macos") and Outlook on the web
# ("outlook-com"), whose renderer the new Outlook for Windows uses: caniemail has no row of its
# own for the new one.
Target = tuple[str, str]
GMAIL_WEB: Target = ("gmail", "desktop-webmail")
GMAIL_APPS: frozenset[Target] = frozenset({("gmail", "ios"), ("gmail", "android")})
GMAIL = GMAIL_APPS | {GMAIL_WEB}
OUTLOOK_WINDOWS: Target = ("outlook", "windows")
OUTLOOK_MAC: Target = ("outlook", "macos")
OUTLOOK_WEB: Target = ("outlook", "outlook-com")
APPLE_MAIL: frozenset[Target] = frozenset({("apple-mail", "macos"), ("apple-mail", "ios")})
YAHOO: frozenset[Target] = frozenset(
    {("yahoo", "desktop-webmail"), ("yahoo", "ios"), ("yahoo", "android")}
)
TARGETS: frozenset[Target] = (
    GMAIL | APPLE_MAIL | YAHOO | {OUTLOOK_WINDOWS, OUTLOOK_MAC, OUTLOOK_WEB}
)
_ALL_OUTLOOK = frozenset({OUTLOOK_WINDOWS, OUTLOOK_MAC, OUTLOOK_WEB})
_WIN = frozenset({OUTLOOK_WINDOWS})
_NO_STYLE = "Gmail's apps with a non-Google account drop <style>: the inlined styles carry the look"


@dataclass(frozen=True)
class Fallback:
    """Why a feature a client lacks, or supports only in part, is safe in the templates."""

    clients: frozenset[Target]
    why: str


# Every feature the bundled templates use that a target client lacks or supports in part
# (caniemail's "n" and "a"), with the fallback that makes it safe. Shared by the client-support
# test and the editor's preflight report. Where a fallback rests on how the feature is used
# (only on table cells, never inline, ...), the client-support test checks that it is so.
FALLBACKS: dict[str, tuple[Fallback, ...]] = {
    "css-at-media": (
        Fallback(_WIN, "no media queries: MJML's conditional tables give it the 600 px layout"),
        Fallback(
            GMAIL | YAHOO | {OUTLOOK_MAC, OUTLOOK_WEB},
            "only a max-width screen query, not nested, no height query; " + _NO_STYLE,
        ),
    ),
    "css-selector-child": (Fallback(_WIN | GMAIL_APPS, "only in the media queries; " + _NO_STYLE),),
    "css-selector-class": (Fallback(GMAIL_APPS, _NO_STYLE),),
    "css-selector-descendant": (Fallback(GMAIL_APPS, _NO_STYLE),),
    "css-selector-grouping": (Fallback(GMAIL_APPS, _NO_STYLE),),
    "css-selector-id": (Fallback(GMAIL_APPS, _NO_STYLE),),
    "css-selector-type": (Fallback(GMAIL_APPS, _NO_STYLE),),
    "html-style": (
        Fallback(GMAIL_APPS, _NO_STYLE),
        Fallback(
            _WIN | {GMAIL_WEB},
            "<style> only in the head, before the body that uses it, under Gmail's 16 KB",
        ),
    ),
    "css-important": (
        Fallback(
            GMAIL | YAHOO | _WIN,
            "only in <style> (never inline), lowercase, after a space, never on a background",
        ),
    ),
    # Dark-mode styles: without them the light theme shows, complete and readable.
    "css-at-media-prefers-color-scheme": (
        Fallback(GMAIL | YAHOO | _WIN, "without dark-mode styles the light theme shows"),
    ),
    "html-meta-color-scheme": (
        Fallback(
            GMAIL | YAHOO | _ALL_OUTLOOK | {("apple-mail", "ios")},
            "a hint only: the dark-mode styles do the work where they apply",
        ),
    ),
    "css-background": (Fallback(_WIN | YAHOO, "plain colours only: no image, no list, no size"),),
    "css-border": (Fallback(_WIN, "borders of at most 4 px, on table cells and images only"),),
    "css-border-radius": (
        Fallback(_WIN, "square corners on images and buttons"),
        Fallback(YAHOO, "simple radii, no slash notation"),
    ),
    "css-display": (
        Fallback(
            GMAIL_APPS | YAHOO,
            "only block, inline-block and none: no flex, grid, flow-root or contents",
        ),
        Fallback(
            _WIN,
            "only display:none counts there: images are blocks in their cells anyway, and "
            "the button's cell carries its colour and padding",
        ),
    ),
    "css-display-none": (
        Fallback(
            _WIN,
            "never on an <img>, nor relied on for tables inside: the hidden dark logo is "
            "also mso-hide:all inside a not-mso conditional",
        ),
    ),
    "css-font-size": (Fallback(_WIN | YAHOO, "px sizes only, no rem"),),
    "css-font-weight": (Fallback(_WIN | YAHOO, "only 400, 600 and 700 (600+ is bold there)"),),
    "css-height": (
        Fallback(_WIN, "heights only on images"),
        Fallback(
            YAHOO,
            "height becomes min-height: heroes have height:auto and no height attribute "
            "(which min-height:auto would leave in charge, squashing them); the logo's fixed "
            "32 px is the same as a minimum",
        ),
    ),
    "html-height": (
        Fallback(_WIN, "only the logo's pixel height; at 120 dpi it stays 32 px, not scaled"),
    ),
    "html-width": (
        Fallback(
            _WIN,
            "image widths are pixels, never %; at 120 dpi attribute sizes stay unscaled",
        ),
    ),
    "css-letter-spacing": (
        Fallback(_WIN, "0.08em on the topic label: a little tighter there, still readable"),
    ),
    "css-line-height": (
        Fallback(_WIN, "unitless line heights on text; the only px one is MJML's empty spacer"),
    ),
    "css-margin": (
        Fallback(GMAIL | YAHOO | {OUTLOOK_MAC, OUTLOOK_WEB}, "no negative margins anywhere"),
        Fallback(
            _WIN,
            "no negative margins, none on <span> or <body>; MJML's centring margin:auto is "
            "done there by the conditional table's align=center",
        ),
    ),
    "css-max-height": (
        Fallback(
            _WIN,
            "heroes keep their shape at their width attribute (no cap there); the hidden "
            "dark logo and preheader are hidden by mso-hide/display:none",
        ),
    ),
    "css-max-width": (
        Fallback(
            _WIN,
            "MJML's conditional tables are 600 px wide; images are sized by their width attribute",
        ),
    ),
    "css-width": (
        Fallback(_WIN, "images are sized by their width attribute, columns by MJML's tables"),
    ),
    "css-opacity": (Fallback(_WIN, "only on the hidden preheader, hidden by display:none"),),
    "css-overflow": (
        Fallback(
            GMAIL | YAHOO | APPLE_MAIL | _ALL_OUTLOOK,
            "overflow:hidden only on hidden elements: nothing scrolls, nothing is clipped",
        ),
    ),
    # Resets (outline on linked images, word spacing on the body): ignoring them changes nothing.
    "css-outline": (Fallback(_WIN, "a reset of linked images' outline"),),
    "css-word-spacing": (Fallback(_WIN | YAHOO, "a reset to normal, no rem or ch"),),
    "css-padding": (
        Fallback(
            _WIN,
            "padding on table cells only, but the button link's, whose cell repeats it as "
            "mso-padding-alt",
        ),
    ),
    "css-text-align": (
        Fallback(
            _WIN | YAHOO | {("gmail", "android")},
            "left and center only: no start, end or match-parent",
        ),
    ),
    "css-text-decoration": (Fallback(_WIN | GMAIL_APPS, "one value (none or underline), inline"),),
    "css-text-transform": (Fallback(_WIN, "uppercase only"),),
    "css-word-break": (
        Fallback(
            GMAIL_APPS | APPLE_MAIL | YAHOO | {OUTLOOK_MAC, OUTLOOK_WEB},
            "MJML's break-word on text cells: only a word longer than the column (a long "
            "URL as a title) is broken, mid-word or (Yahoo) not at all",
        ),
    ),
    "html-align": (
        Fallback(frozenset({OUTLOOK_MAC}), "left and right only on cells, never on a <table>"),
    ),
    "html-aria-label": (
        Fallback(
            YAHOO,
            "stripped there: a 'Read more' link's purpose then comes from its card, whose "
            "title above links to the same post (WCAG 2.4.4, in context)",
        ),
    ),
    "html-body": (
        Fallback(
            GMAIL | YAHOO | {OUTLOOK_MAC, OUTLOOK_WEB},
            "the wrapper div repeats the body's background",
        ),
    ),
    "html-dir": (Fallback(_WIN, "dir only on <html> and the wrapper, never on a link"),),
    "html-doctype": (
        Fallback(_WIN | {("yahoo", "android")}, "the tables do not depend on standards mode"),
    ),
    "html-lang": (Fallback(YAHOO, "lang only on <html> and the wrapper div, never on a cell"),),
    "html-role": (
        Fallback(
            YAHOO,
            "role=presentation is on tables; the wrapper's role=article, dropped, only loses "
            "a landmark",
        ),
    ),
    # target="_blank": webmail opens links in a new tab anyway.
    "html-target": (
        Fallback(
            GMAIL | YAHOO | APPLE_MAIL | _ALL_OUTLOOK,
            "links open in a new window or tab either way",
        ),
    ),
}

ENHANCEMENTS: dict[str, set[Target]] = {
    feature: {client for fallback in fallbacks for client in fallback.clients}
    for feature, fallbacks in FALLBACKS.items()
}
"""Per feature, the target clients for which a fallback is named in :data:`FALLBACKS`."""


def load_unsupported(csv_path: Path, partial: bool = True) -> dict[str, set[Target]]:
    """caniemail's flat support table → feature → the target clients that lack it, and (with
    ``partial``) those that support it only in part ("a": partial or buggy)."""
    lacking = ("n", "a") if partial else ("n",)
    found: dict[str, set[Target]] = defaultdict(set)
    with csv_path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            where = (row["client"], row["platform"])
            if where in TARGETS and row["support"].startswith(lacking):
                found[row["feature_slug"]].add(where)
    return dict(found)


_ELEMENTS = {
    "table": "html-table",
    "img": "html-img",
    "div": "html-div",
    "p": "html-p",
    "span": "html-span",
    "style": "html-style",
    "strong": "html-strong",
    "b": "html-strong",
    "code": "html-code",
    "pre": "html-pre",
    "ul": "html-lists",
    "ol": "html-lists",
    "blockquote": "html-blockquote",
    "hr": "html-hr",
    "small": "html-small",
    "link": "html-link",
    "svg": "html-svg",
    "video": "html-video",
    "audio": "html-audio",
    "form": "html-form",
    "picture": "html-picture",
    "address": "html-address",
    "abbr": "html-abbr",
    "del": "html-del",
    "wbr": "html-wbr",
    "body": "html-body",
}
_SEMANTIC = {"header", "footer", "article", "section", "nav", "main", "aside"}
_ATTRIBUTES = {
    "align": "html-align",
    "valign": "html-valign",
    "width": "html-width",
    "height": "html-height",
    "cellpadding": "html-cellpadding",
    "cellspacing": "html-cellspacing",
    "background": "html-background",
    "dir": "html-dir",
    "lang": "html-lang",
    "role": "html-role",
    "aria-label": "html-aria-label",
    "aria-hidden": "html-aria-hidden",
    "aria-describedby": "html-aria-describedby",
    "aria-labelledby": "html-aria-labelledby",
    "aria-live": "html-aria-live",
    "target": "html-target",
    "loading": "html-loading-attribute",
    "srcset": "html-srcset",
    "hidden": "html-hidden",
}
_PROPERTY_FAMILIES = {
    "margin": "css-margin",
    "padding": "css-padding",
    "border-radius": "css-border-radius",
    "border": "css-border",
    "background-color": "css-background-color",
    "background-image": "css-background-image",
    "background": "css-background",
    "font-size": "css-font-size",
    "font-weight": "css-font-weight",
    "font": "css-font",
}
_IMAGE_TYPES = {
    ".png": "image-png",
    ".jpg": "image-jpg",
    ".jpeg": "image-jpg",
    ".gif": "image-gif",
    ".webp": "image-webp",
    ".svg": "image-svg",
    ".avif": "image-avif",
}
_DECLARATION = re.compile(r"([a-zA-Z-]+)\s*:\s*([^;{}]+)")
_RULE = re.compile(r"([^{}@]+)\{([^{}]*)\}")
_UNITS = [
    (re.compile(r"\d(px)\b"), "css-unit-px"),
    (re.compile(r"\d%"), "css-unit-percent"),
    (re.compile(r"\d(em)\b"), "css-unit-em"),
    (re.compile(r"\d(rem)\b"), "css-unit-rem"),
    (re.compile(r"\d(pt)\b"), "css-unit-pt"),
    (re.compile(r"\d(vw)\b"), "css-unit-vw"),
    (re.compile(r"\d(vh)\b"), "css-unit-vh"),
]


def property_feature(name: str) -> str:
    """``margin-top`` → ``css-margin``; ``max-width`` → ``css-max-width``; vendor ones kept."""
    name = name.lower()
    for family, feature in _PROPERTY_FAMILIES.items():
        if name == family or (name.startswith(family + "-") and family not in ("border", "font")):
            return feature
    if name.startswith(("border-top", "border-bottom", "border-left", "border-right")):
        return "css-border"
    return f"css-{name}"


def _declarations(css: str, features: set[str]) -> None:
    for name, value in _DECLARATION.findall(css):
        features.add(property_feature(name))
        lowered = value.lower()
        if "!important" in lowered:
            features.add("css-important")
        if name.lower() == "display":
            if "none" in lowered:
                features.add("css-display-none")
            if "flex" in lowered:
                features.add("css-display-flex")
            if "grid" in lowered:
                features.add("css-display-grid")
        if "rgba(" in lowered:
            features.add("css-rgba")
        elif "rgb(" in lowered:
            features.add("css-rgb")
        if "linear-gradient(" in lowered:
            features.add("css-linear-gradient")
        if "var(--" in lowered:
            features.add("css-variables")
        for pattern, feature in _UNITS:
            if pattern.search(lowered):
                features.add(feature)


def _selectors(css: str, features: set[str]) -> None:
    for selectors, _ in _RULE.findall(css):
        if "," in selectors:
            features.add("css-selector-grouping")
        for selector in selectors.split(","):
            selector = selector.strip()
            if not selector:
                continue
            if "." in selector:
                features.add("css-selector-class")
            if "#" in selector:
                features.add("css-selector-id")
            if ">" in selector:
                features.add("css-selector-child")
            if "[" in selector:
                features.add("css-selector-attribute")
            if re.search(r"[\w\]]\s+[\w.#\[]", selector.replace(" > ", ">")):
                features.add("css-selector-descendant")
            if re.match(r"^[a-z]", selector):
                features.add("css-selector-type")
            for pseudo in re.findall(r":([a-z-]+)", selector):
                features.add(f"css-pseudo-class-{pseudo}")


def email_features(html: str) -> set[str]:
    features: set[str] = set()
    if html.lstrip().lower().startswith("<!doctype"):
        features.add("html-doctype")
    document = lxml_html.document_fromstring(html)
    for element in document.iter():
        tag = element.tag
        if not isinstance(tag, str):
            features.add("html-comments")
            continue
        tag = tag.lower()
        if tag in _ELEMENTS:
            features.add(_ELEMENTS[tag])
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            features.add("html-h1-h6")
        if tag in _SEMANTIC:
            features.add("html-semantics")
        for attribute, value in element.attrib.items():
            if attribute in _ATTRIBUTES:
                features.add(_ATTRIBUTES[attribute])
            if attribute == "style":
                _declarations(str(value), features)
        if tag == "meta" and element.get("name", "").lower() in (
            "color-scheme",
            "supported-color-schemes",
        ):
            features.add("html-meta-color-scheme")
        if tag == "a":
            href = element.get("href", "")
            if href.startswith("mailto:"):
                features.add("html-mailto-links")
            elif href.startswith("#") and len(href) > 1:
                features.add("html-anchor-links")
        if tag == "img":
            path = urlsplit(element.get("src", "")).path.lower()
            for extension, feature in _IMAGE_TYPES.items():
                if path.endswith(extension):
                    features.add(feature)
        if tag == "style" and element.text:
            css = element.text
            if "/*" in css:
                features.add("css-comments")
            if "@media" in css:
                features.add("css-at-media")
            if "prefers-color-scheme" in css:
                features.add("css-at-media-prefers-color-scheme")
            if "@import" in css:
                features.add("css-at-import")
            if "@font-face" in css:
                features.add("css-at-font-face")
            rules = re.sub(r"@media[^{]*", "", css)  # conditions are not declarations
            _selectors(rules, features)
            _declarations(rules, features)
    return features
