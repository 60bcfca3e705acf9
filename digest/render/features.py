"""The HTML and CSS features an email uses, named as caniemail.com names them.

Used to check a rendered email against client support data (which clients lack a feature),
so a template change that relies on something Outlook or Gmail ignores is caught.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from lxml import html as lxml_html

# The clients whose support matters (caniemail's client and platform names), and the features
# the bundled templates use on purpose although some of them lack it, each with the fallback
# that makes it safe. Shared by the client-support test and the editor's preflight report.
TARGETS = {
    ("gmail", "desktop-webmail"),
    ("gmail", "ios"),
    ("gmail", "android"),
    ("outlook", "windows"),
    ("outlook", "macos"),
    ("outlook", "outlook-com"),
    ("apple-mail", "macos"),
    ("apple-mail", "ios"),
}

ENHANCEMENTS: dict[str, set[tuple[str, str]]] = {
    # The phone layout. Outlook on Windows has no media queries and gets the 600 px layout
    # from MJML's conditional (mso) tables, which is what it should show.
    "css-at-media": {("outlook", "windows")},
    # Only used inside the phone media query, which Outlook on Windows never applies.
    "css-selector-child": {("outlook", "windows")},
    # Dark-mode styles: without them the light theme shows, complete and readable.
    "css-at-media-prefers-color-scheme": {
        ("gmail", "desktop-webmail"),
        ("gmail", "ios"),
        ("gmail", "android"),
        ("outlook", "windows"),
    },
    "html-meta-color-scheme": {
        ("apple-mail", "ios"),
        ("gmail", "desktop-webmail"),
        ("gmail", "ios"),
        ("gmail", "android"),
        ("outlook", "windows"),
        ("outlook", "macos"),
        ("outlook", "outlook-com"),
    },
    # Rounded corners on images and buttons; Outlook on Windows shows square ones.
    "css-border-radius": {("outlook", "windows")},
    # MJML's table reset; the cellspacing="0" attribute next to it does the same job.
    "css-border-spacing": {("outlook", "windows"), ("outlook", "macos")},
    # The hidden preheader: display:none (supported) hides it; these only add belt and braces.
    "css-max-height": {("outlook", "windows")},
    "css-overflow": {("outlook", "windows")},
    "css-opacity": {("outlook", "windows")},
    # Resets (outline on linked images, word spacing on the body): ignoring them changes nothing.
    "css-outline": {("outlook", "windows")},
    "css-word-spacing": {("outlook", "windows")},
    # The wrapper div repeats the body's background, so a stripped <body> loses nothing.
    "html-body": {("outlook", "macos")},
    # Outlook on Windows ignores the doctype; the tables do not depend on standards mode.
    "html-doctype": {("outlook", "windows")},
    # target="_blank": webmail opens links in a new tab anyway.
    "html-target": {
        ("gmail", "desktop-webmail"),
        ("gmail", "ios"),
        ("gmail", "android"),
        ("outlook", "outlook-com"),
    },
}


def load_unsupported(csv_path: Path) -> dict[str, set[tuple[str, str]]]:
    """caniemail's flat support table → feature → the target clients that lack it."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    with csv_path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            where = (row["client"], row["platform"])
            if where in TARGETS and row["support"].startswith("n"):
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
