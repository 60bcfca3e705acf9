"""The golden issue's variants in headless Chromium at 320, 375, 600 and 800 px.

Image requests to the golden issue's made-up host are answered from the example site's PNGs
(the network boundary, replaced); nothing else is fetched. Screenshots land in ./screenshots.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from digest.personalize import compile_template, token_values
from digest.render import HERO_MAX_HEIGHT, RenderedIssue, render_issue
from digest.scaffold import example_site
from tests.conftest import DATA, SCREENSHOTS
from tests.digest.render.golden import ALL_KEYS, CTX, ISSUE, key_name

pytestmark = pytest.mark.browser

PNG = (example_site() / "images" / "feature-stores-on-postgres.png").read_bytes()
LOGO = (example_site() / "images" / "logo.png").read_bytes()
LOGO_DARK = (example_site() / "images" / "logo-dark.png").read_bytes()
PORTRAIT = (DATA / "portrait.png").read_bytes()
STYLE = re.compile(r"<style\b.*?</style>", re.S | re.I)

MEASURE = """() => {
  const box = el => { const r = el.getBoundingClientRect();
    return {x: r.left, y: r.top, w: r.width, right: r.right, bottom: r.bottom}; };
  const cards = [...document.querySelectorAll('h3')].map(title => {
    const section = title.closest('div.panel');
    const img = section.querySelector('img');
    return {title: box(title), img: img ? box(img) : null};
  });
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0));
  return {scrollWidth: document.documentElement.scrollWidth, cards,
          broken: broken.map(i => i.src)};
}"""


def write_variants(folder: Path) -> dict[str, Path]:
    """Every variant of the golden issue, its tokens filled, as an HTML file in ``folder``."""
    rendered: RenderedIssue = render_issue(ISSUE, CTX)
    values = token_values(
        {
            "first_name": "Alex",
            "email": "alex@example.com",
            "unsubscribe_url": "https://digest.golden.example/unsubscribe",
            "preferences_url": "https://digest.golden.example/preferences",
        },
        {s: f"https://digest.golden.example/unsubscribe?topic={s}" for s in ISSUE.topic_slugs},
    )
    out = {}
    for key in ALL_KEYS:
        path = folder / f"{key_name(key)}.html"
        path.write_text(compile_template(rendered.variant(key).html).fill(values), encoding="utf-8")
        out[key_name(key)] = path
    return out


def route_images(page: Any, portrait: bool = False) -> None:
    """The golden issue's made-up image hosts, answered from the example site's PNGs; with
    ``portrait``, the hero of unknown size (post 3) is a tall 400 x 1000 image."""

    def serve(route: Any) -> None:
        url = route.request.url
        body = (
            LOGO
            if url.endswith("/logo.png")
            else LOGO_DARK
            if url.endswith("dark.png")
            else PORTRAIT
            if portrait and url.endswith("/3.png")
            else PNG
        )
        route.fulfill(status=200, body=body, content_type="image/png")

    page.route("https://img.golden.example/**", serve)
    page.route("https://blog.golden.example/logo*.png", serve)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_variants(tmp_path_factory.mktemp("golden"))


def open_page(browser: Any, path: Path, width: int) -> Any:
    page = browser.new_page(viewport={"width": width, "height": 900})
    route_images(page)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page


@pytest.mark.parametrize("width", [320, 375, 480, 600, 800])
def test_golden_variants_lay_out_at_each_width(
    browser: Any, pages: dict[str, Path], width: int
) -> None:
    for name, path in pages.items():
        page = open_page(browser, path, width)
        page.screenshot(path=str(SCREENSHOTS / f"golden-{name}-{width}.png"), full_page=True)
        found = page.evaluate(MEASURE)
        page.close()
        assert found["broken"] == [], name
        if width <= 480:
            assert found["scrollWidth"] <= width, f"{name}: sideways scrolling at {width}"
        for card in found["cards"]:
            image, title = card["img"], card["title"]
            if image is None:
                continue
            if width <= 480:
                assert image["bottom"] <= title["y"], f"{name}: one column at {width}"
                assert image["w"] >= width - 60, f"{name}: image spans the column at {width}"
            else:
                assert image["right"] <= title["x"], f"{name}: image beside text at {width}"
                assert image["y"] <= title["y"] < image["bottom"], name


OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const past = [];
  for (const el of document.body.querySelectorAll('*')) {
    const text = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    const style = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    if (!text || style.display === 'none' || r.width === 0 || r.height === 0) continue;
    const cell = el.parentElement.closest('td');
    const limit = cell ? Math.min(width, cell.getBoundingClientRect().right) : width;
    if (r.right > limit + 1 || r.left < -1 || el.scrollWidth > el.clientWidth + 1 &&
        style.display !== 'inline')
      past.push(el.tagName + ': ' + el.textContent.trim().slice(0, 40));
  }
  const heroes = [...document.images].filter(i => i.src.includes('img.golden')).map(i => {
    const r = i.getBoundingClientRect();
    return {src: i.src, w: r.width, h: r.height, ratio: i.naturalWidth / i.naturalHeight};
  });
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0));
  return {scrollWidth: document.documentElement.scrollWidth, past, heroes,
          broken: broken.map(i => i.src)};
}"""


def yahoo(html: str) -> str:
    """What Yahoo Mail does to an email (caniemail: css-height "n #1", html-aria-label "n"):
    every CSS ``height`` becomes ``min-height``, and ``aria-label`` goes."""
    html = re.sub(r'(?<=[;"\'\s])height\s*:', "min-height:", html)
    return re.sub(r'\saria-label="[^"]*"', "", html)


@pytest.mark.parametrize("mode", ["dark", "no-style", "no-style-dark", "yahoo"])
def test_dark_mode_and_without_style_at_each_width(
    browser: Any, pages: dict[str, Path], tmp_path: Path, mode: str
) -> None:
    """Dark mode, and Gmail without embedded CSS (every <style> removed): no sideways
    scrolling, no broken image, no text past its box, and no hero over the height cap or out
    of shape, with a tall portrait as the hero of unknown size. Screenshots of each."""
    for name in ("backend+ai-ml+frontend",):  # every kind of card, the portrait among them
        path = pages[name]
        if mode.startswith("no-style"):
            path = tmp_path / f"{name}-no-style.html"
            path.write_text(STYLE.sub("", pages[name].read_text("utf-8")), encoding="utf-8")
            assert "<style" not in path.read_text("utf-8")
        if mode == "yahoo":
            path = tmp_path / f"{name}-yahoo.html"
            path.write_text(yahoo(pages[name].read_text("utf-8")), encoding="utf-8")
        for width in (320, 375, 600, 800):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.emulate_media(color_scheme="dark" if mode.endswith("dark") else "light")
            route_images(page, portrait=True)
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            shot = SCREENSHOTS / f"golden-{name}-{mode}-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
            found = page.evaluate(OVERFLOW)
            page.close()
            where = f"{name} {mode} {width}px"
            assert found["broken"] == [], where
            assert found["scrollWidth"] <= width, f"{where}: sideways scrolling"
            assert found["past"] == [], f"{where}: text past its box"
            assert found["heroes"], where
            for hero in found["heroes"]:
                assert hero["h"] <= HERO_MAX_HEIGHT + 0.5, (where, hero)
                assert abs(hero["w"] / hero["h"] - hero["ratio"]) < 0.02, (where, hero)
