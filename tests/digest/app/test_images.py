"""Local images made public: the example site's logo and heroes become URLs under
``public_url`` (content-hashed, served by `digest serve`), never ``file:`` URLs in an email; a
file outside the project is never published; an image no reader can load stops the send."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from sqlalchemy import update

from digest import db
from digest.app import gathering, issues, sending
from digest.app.images import PUBLISHED_FOLDER, ImagePublisher, published_file
from digest.app.wiring import Project
from digest.errors import DigestError
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock, Live

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def test_a_project_image_is_published_once_under_its_content_hash(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    logo = tmp_path / "images" / "logo.PNG"
    logo.write_bytes(PNG)
    publisher = ImagePublisher(tmp_path, "https://news.example/images")
    url = publisher.url(logo.as_uri())
    name = hashlib.sha256(PNG).hexdigest()[:24] + ".png"
    assert url == f"https://news.example/images/{name}"
    assert (tmp_path / PUBLISHED_FOLDER / name).read_bytes() == PNG
    assert ImagePublisher(tmp_path, "https://news.example/images/").url(logo.as_uri()) == url
    assert sorted(p.name for p in (tmp_path / PUBLISHED_FOLDER).iterdir()) == [name]
    assert published_file(tmp_path, name) == (tmp_path / PUBLISHED_FOLDER / name).resolve()
    # a changed image is a new name: a cached old one is never shown instead
    logo.write_bytes(PNG + b"\x01")
    assert ImagePublisher(tmp_path, "https://news.example/images").url(logo.as_uri()) != url


def test_only_real_images_inside_the_project_are_published(tmp_path: Path) -> None:
    project, outside = tmp_path / "site", tmp_path / "elsewhere"
    project.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(PNG)
    (project / "notes.png").write_text("not an image at all", encoding="utf-8")
    (project / "page.html").write_bytes(PNG)
    (project / "link.png").symlink_to(outside / "secret.png")
    publisher = ImagePublisher(project, "https://news.example/images")
    for url in [
        (outside / "secret.png").as_uri(),
        (project / ".." / "elsewhere" / "secret.png").as_uri(),
        (project / "notes.png").as_uri(),
        (project / "page.html").as_uri(),
        (project / "link.png").as_uri(),  # a link out of the project is outside it
        (project / "missing.png").as_uri(),
        "file:///etc/passwd",
        "file://otherhost/site/x.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "https://cdn.example/x.png",
    ]:
        assert publisher.url(url) == url
    assert not (project / PUBLISHED_FOLDER).exists()
    for name in ["../digest.toml", "x.png", "0" * 24 + ".html", "0" * 24 + ".png"]:
        assert published_file(project, name) is None


def test_the_example_emails_carry_no_file_urls(example_project: Project) -> None:
    gathering.gather_sources(example_project)
    issue = issues.plan(example_project, without_readers=True)
    assert issue is not None
    variant = example_project.render(issue.issue).variant(frozenset(issue.issue.topic_slugs))
    assert "file:" not in variant.html
    images = re.findall(r'<img[^>]+src="([^"]+)"', variant.html)
    assert images and all(
        re.fullmatch(r"http://localhost:8000/images/[0-9a-f]{24}\.png", src) for src in images
    )
    logo = (example_project.config.base_dir / "images" / "logo.png").read_bytes()
    assert f"/images/{hashlib.sha256(logo).hexdigest()[:24]}.png" in images[0]


@pytest.mark.parametrize(
    ("image", "shown"),
    [
        ("file:///etc/passwd", "file:///etc/passwd"),
        ("data:image/png;base64,iVBORw0KGgo=", "(data:image/png;base64,iVBORw0KGgo=)"),
        ("images/x.png", "images/x.png"),
    ],
)
def test_a_send_with_an_image_no_reader_can_load_is_refused(
    example_project: Project, clock: FixedClock, image: str, shown: str
) -> None:
    gathering.gather_sources(example_project)
    with example_project.engine.begin() as conn:
        SubscriberStore(conn).add("r@example.com", "R", frozenset({"backend"}), clock(), "t")
        conn.execute(update(db.posts).where(db.posts.c.id == 4).values(image_url=image))
    with pytest.raises(
        DigestError, match="has 1 image no reader can load: 'Graceful Shut"
    ) as refused:
        sending.send(example_project)
    assert shown in str(refused.value)
    assert "`digest issues preflight 1` shows the report" in str(refused.value)
    assert not list(example_project.config.outbox_dir.glob("**/*.eml"))


def test_digest_serve_answers_the_published_images(live: Live) -> None:
    gathering.gather_sources(live.project)
    logo_url = live.project.images().url(live.project.config.logo_url())
    assert logo_url is not None
    name = logo_url.rsplit("/", 1)[1]
    with live.client() as client:
        found = client.get(f"/images/{name}")
        assert found.status_code == 200
        assert found.content == (live.project.config.base_dir / "images" / "logo.png").read_bytes()
        assert found.headers["content-type"] == "image/png"
        assert found.headers["cache-control"] == "public, max-age=31536000, immutable"
        for wrong in ["0" * 24 + ".png", "..%2Fdigest.toml", "logo.png"]:
            assert client.get(f"/images/{wrong}").status_code == 404
        page = client.get("/subscribe")
    assert f'<img class="logo" src="/images/{name}"' in page.text
