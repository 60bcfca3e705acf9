"""The rendered previews in headless Chromium: one column on a phone, the template's columns at
600 px, every image shown. Screenshots go to ./screenshots (look at them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from digest.app import gathering
from digest.app import previews as preview_cases
from digest.app.images import PUBLISHED_FOLDER
from digest.app.wiring import Project
from tests.conftest import SCREENSHOTS

pytestmark = pytest.mark.browser


@pytest.fixture
def previews(example_project: Project, tmp_path: Path) -> dict[str, Path]:
    gathering.gather_sources(example_project)
    with example_project.engine.begin() as conn:
        from subscribers.store import SubscriberStore

        SubscriberStore(conn).add(
            "all@example.com",
            "All",
            frozenset({"backend", "ai-ml", "data", "frontend"}),
            example_project.clock(),
        )
        SubscriberStore(conn).add(
            "fe@example.com", "Fe", frozenset({"frontend"}), example_project.clock()
        )
    result = preview_cases.preview(example_project, None, tmp_path / "preview")
    return {"+".join(sorted(key.topics)): path for key, path in result.files.items()}


def serve_published(page: Any, project: Project) -> None:
    """The emails link the site's images under public_url (published by digest serve): answer
    those requests from the published folder, as the site would."""
    folder = project.config.base_dir / PUBLISHED_FOLDER
    base = project.images().url_base

    def fulfill(route: Any) -> None:
        route.fulfill(path=str(folder / route.request.url[len(base) :]))

    page.route(base + "*", fulfill)


def measure(page: Any) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(
        """() => {
        const box = el => {
          const r = el.getBoundingClientRect();
          return {x: r.left, y: r.top, w: r.width, right: r.right, bottom: r.bottom};
        };
        const heroes = [...document.images].filter(
          i => i.alt !== 'Northwind Engineering' && !/logo(-dark)?[.]png$/.test(i.src));
        const cards = heroes.map(img => {
          let section = img.closest('div[style*="max-width:600px"]');
          const title = section.querySelector('h3');
          const loaded = img.complete && img.naturalWidth > 0;
          return {img: box(img), title: box(title), loaded, alt: img.alt};
        });
        const unloaded = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0));
        return {scrollWidth: document.documentElement.scrollWidth, cards,
                unloaded: unloaded.map(i => i.src)};
      }"""
    )
    return found


@pytest.mark.parametrize("segment", ["ai-ml+backend+data+frontend", "frontend"])
def test_phone_width_is_one_column_of_cards_with_images(
    browser: Any, previews: dict[str, Path], segment: str, example_project: Project
) -> None:
    for width in (320, 375, 480):
        page = browser.new_page(viewport={"width": width, "height": 800})
        serve_published(page, example_project)
        page.goto(previews[segment].as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(SCREENSHOTS / f"digest-{segment}-{width}.png"), full_page=True)
        found = measure(page)
        page.close()
        assert found["scrollWidth"] <= width, "sideways scrolling"
        assert found["unloaded"] == []
        assert found["cards"]
        for card in found["cards"]:
            assert card["loaded"] and card["alt"]
            assert card["img"]["bottom"] <= card["title"]["y"], "image should sit above the title"
            assert card["img"]["w"] >= width - 60, "image should span the column"


def test_600px_shows_image_beside_text(
    browser: Any, previews: dict[str, Path], example_project: Project
) -> None:
    page = browser.new_page(viewport={"width": 600, "height": 900})
    serve_published(page, example_project)
    page.goto(previews["ai-ml+backend+data+frontend"].as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(SCREENSHOTS / "digest-all-600.png"), full_page=True)
    found = measure(page)
    page.close()
    assert found["scrollWidth"] <= 600
    assert found["unloaded"] == []
    for card in found["cards"]:
        assert card["img"]["right"] <= card["title"]["x"], "image should sit left of the title"
        assert card["img"]["y"] <= card["title"]["y"] < card["img"]["bottom"], "same row"
