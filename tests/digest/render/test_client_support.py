"""The golden issue against caniemail's support data (DIGEST_CORPUS_DIR) for Gmail, Outlook
(classic, Mac, web and new), Apple Mail and Yahoo: every feature it uses is supported, or, where a
client lacks it or supports it only in part, has a fallback named in
:data:`digest.render.features.FALLBACKS`. Where a fallback rests on how a feature is used (only
on table cells, never inline, ...), it is checked here on the rendered HTML."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from lxml import html as lxml_html

from digest.render import render_issue
from digest.render.features import (
    ENHANCEMENTS,
    FALLBACKS,
    OUTLOOK_WINDOWS,
    TARGETS,
    YAHOO,
    email_features,
    load_unsupported,
)
from tests.digest.render.golden import ALL_KEYS, CTX, ISSUE, key_name

CSV = ("caniemail", "caniemail_latest_support.csv")
STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)
DECLARATION = re.compile(r"([a-zA-Z-]+)\s*:\s*([^;]+)")


@pytest.fixture(scope="module")
def variants() -> dict[str, str]:
    rendered = render_issue(ISSUE, CTX)
    return {key_name(key): rendered.variant(key).html for key in ALL_KEYS}


def inline(html: str) -> list[tuple[str, str, str, lxml_html.HtmlElement]]:
    """Every inline declaration: (tag, property, value, element)."""
    found = []
    for element in lxml_html.document_fromstring(html).iter():
        if isinstance(element.tag, str):
            for name, value in DECLARATION.findall(element.get("style", "")):
                found.append((element.tag, name.lower(), value.strip().lower(), element))
    return found


def unsupported(
    corpus: Path, htmls: Iterable[str]
) -> tuple[set[str], dict[str, list[tuple[str, str]]]]:
    """The features the emails use, and those some target client lacks with no fallback
    named (feature → the clients)."""
    lacking = load_unsupported(corpus.joinpath(*CSV))
    used: set[str] = set()
    for html in htmls:
        used |= email_features(html)
    problems = {
        feature: sorted(lacking.get(feature, set()) - ENHANCEMENTS.get(feature, set()))
        for feature in used
        if lacking.get(feature, set()) - ENHANCEMENTS.get(feature, set())
    }
    return used, problems


def test_every_feature_used_is_supported_or_has_a_named_fallback(
    corpus: Path, variants: dict[str, str]
) -> None:
    lacking = load_unsupported(corpus.joinpath(*CSV))
    used, problems = unsupported(corpus, variants.values())
    assert {"html-table", "html-img", "css-padding", "css-at-media"} <= used  # the lint sees
    assert problems == {}, problems
    stale = {
        f: sorted(clients - lacking.get(f, set()))
        for f, clients in ENHANCEMENTS.items()
        if f not in used or clients - lacking.get(f, set())
    }
    assert stale == {}, f"fallbacks named for what is not used or not lacking: {stale}"


def test_partial_support_and_yahoo_are_counted(corpus: Path) -> None:
    """The check sees what it is meant to: a partial ("a") entry, and Yahoo's rows."""
    everything = load_unsupported(corpus.joinpath(*CSV))
    only_none = load_unsupported(corpus.joinpath(*CSV), partial=False)
    assert OUTLOOK_WINDOWS in everything["css-padding"]  # "a #1 #2": table cells only
    assert OUTLOOK_WINDOWS not in only_none.get("css-padding", set())
    assert everything["html-aria-label"] >= YAHOO
    assert YAHOO <= TARGETS
    assert all(f.why and f.clients <= TARGETS for fs in FALLBACKS.values() for f in fs)


def test_padding_is_on_table_cells_or_repeated_for_outlook(variants: dict[str, str]) -> None:
    """Outlook on Windows: padding only on table cells (css-padding, "a #1")."""
    for name, html in variants.items():
        for tag, prop, _, element in inline(html):
            if not prop.startswith("padding") or tag in ("td", "th"):
                continue
            cell = element.getparent()
            assert tag == "a" and cell is not None and cell.tag == "td", (name, tag, prop)
            assert "mso-padding-alt" in cell.get("style", ""), (name, "button without alt")


def test_declarations_stay_within_what_the_fallbacks_say(variants: dict[str, str]) -> None:
    for name, html in variants.items():
        for tag, prop, value, _ in inline(html):
            where = (name, tag, prop, value)
            assert "!important" not in value, where  # css-important: never inline
            assert "rem" not in re.findall(r"\d(rem)\b", value), where  # css-font-size
            if prop.startswith("margin"):
                assert not re.search(r"(^|\s)-\d", value), where  # css-margin: no negatives
                assert tag not in ("span", "body"), where
            if prop == "font-weight":
                assert value in ("400", "600", "700", "normal", "bold"), where
            if prop.startswith("border") and "radius" not in prop:
                assert tag in ("td", "img", "table"), where  # css-border: not on <p>/<div>
                widths = [int(w) for w in re.findall(r"(\d+)px", value)]
                assert all(w <= 4 for w in widths), where
            if prop in ("height", "max-height") and value not in ("0", "0px"):
                assert tag == "img", where  # css-height: only on images
            if prop == "text-align":
                assert value in ("left", "center"), where
            if prop == "text-decoration":
                assert value in ("none", "underline"), where
            if prop == "text-transform":
                assert value == "uppercase", where
            if prop == "display":
                assert value in ("block", "inline-block", "none"), where
            if prop == "background" or prop == "background-image":
                assert "url(" not in value and "," not in value, where
            if prop == "line-height":
                assert re.fullmatch(r"[\d.]+", value) or value == "1px", where


def test_attributes_stay_within_what_the_fallbacks_say(variants: dict[str, str]) -> None:
    for name, html in variants.items():
        document = lxml_html.document_fromstring(html)
        for element in document.iter():
            if not isinstance(element.tag, str):
                continue
            where = (name, element.tag, element.attrib.items())
            if element.get("lang") or element.get("dir"):
                assert element.tag in ("html", "div"), where  # html-lang, html-dir
            if element.get("role") == "presentation":
                assert element.tag == "table", where  # html-role
            if element.tag == "table":
                assert element.get("align") not in ("left", "right"), where  # html-align
            if element.tag == "img":
                assert re.fullmatch(r"\d+", element.get("width", "")), where  # html-width
                if element.get("height"):  # html-height: the logo only
                    assert re.fullmatch(r"\d+", element.get("height", "")), where
                    assert element.get("alt") == CTX.site_name, where
        styles = STYLE.findall(html.split("<body", 1)[0])
        assert "<style" not in html.split("<body", 1)[1], name  # html-style: head only
        assert sum(len(s.encode()) for s in styles) < 16_000, name  # Gmail's 16 KB
        for css in styles:
            for important in re.findall(r".{2}!important", css):
                assert important[1] == " " or important[0] == " ", important
