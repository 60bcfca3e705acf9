"""The golden issue against caniemail's support data (DIGEST_CORPUS_DIR): nothing it relies on
may be unsupported in Gmail, Outlook or Apple Mail, unless it is a progressive enhancement with
a fallback, listed below with the reason it is safe."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from digest.render import render_issue
from digest.render.features import email_features
from tests.digest.render.golden import ALL_KEYS, CTX, ISSUE

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

ENHANCEMENTS = {
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


def unsupported(corpus: Path) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    with (corpus / "caniemail" / "caniemail_latest_support.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            where = (row["client"], row["platform"])
            if where in TARGETS and row["support"].startswith("n"):
                found[row["feature_slug"]].add(where)
    return found


def test_every_feature_used_is_supported_or_an_enhancement(corpus: Path) -> None:
    lacking = unsupported(corpus)
    rendered = render_issue(ISSUE, CTX)
    used: set[str] = set()
    for key in ALL_KEYS:
        used |= email_features(rendered.variant(key).html)
    assert {"html-table", "html-img", "css-padding", "css-at-media"} <= used  # the lint sees
    problems = {
        feature: sorted(lacking[feature] - ENHANCEMENTS.get(feature, set()))
        for feature in used
        if lacking[feature] - ENHANCEMENTS.get(feature, set())
    }
    assert problems == {}, problems
    stale = {f for f in ENHANCEMENTS if f not in used}
    assert not stale, f"allow-list entries no longer needed: {stale}"
