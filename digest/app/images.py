"""Local images made public: a logo or a hero that is a file of the project (``images/logo.png``,
a feed's ``../images/x.png``) becomes a URL every reader can load.

An email is read on other machines, so a ``file:`` URL shows nothing there. Such an image is
copied, under a name made of its content's hash (a changed image gets a new name, so caches
never show an old one), to ``published/images/`` next to ``digest.toml``, and the emails link
to ``<public_url>/images/<name>``, which ``digest serve`` answers; or to ``[site] images_url``
for a folder served by something else (copy ``published/images/`` there).

Only image files inside the project folder are published: a feed that names
``file:///etc/passwd`` as its hero gets nothing published, and its email is refused by
preflight like any other image no reader can load.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from digest.models import Issue, IssueSection, StoredPost

PUBLISHED_FOLDER = "published/images"
IMAGES_ROUTE = "/images/"
MAGIC = {
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".gif": (b"GIF87a", b"GIF89a"),
    ".webp": (b"RIFF",),
}
"""The kinds published, by suffix, with how their files begin: a file is published only
when its bytes say it is the image its name says."""
MAX_BYTES = 5_000_000


class ImagePublisher:
    """Publishes the project's local images under one public base URL."""

    def __init__(self, base_dir: Path, url_base: str) -> None:
        self.base_dir = base_dir.resolve()
        self.folder = self.base_dir / PUBLISHED_FOLDER
        self.url_base = url_base.rstrip("/") + "/"
        self._done: dict[str, str] = {}

    def url(self, url: str | None) -> str | None:
        """The public URL of ``url`` when it is a ``file:`` URL of an image in the project;
        any other URL as it is (preflight judges it)."""
        if url is None:
            return None
        found = self._done.get(url)
        if found is None:
            path = self.local_image(url)
            found = self._done[url] = self.url_base + self._publish(path) if path else url
        return found

    def local_image(self, url: str) -> Path | None:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            return None
        path = Path(unquote(parts.path)).resolve()
        suffix = path.suffix.lower()
        if not path.is_relative_to(self.base_dir) or suffix not in MAGIC:
            return None
        try:
            if not path.is_file() or path.stat().st_size > MAX_BYTES:
                return None
            with path.open("rb") as handle:
                head = handle.read(12)
        except OSError:
            return None
        if not head.startswith(MAGIC[suffix]) or (suffix == ".webp" and head[8:12] != b"WEBP"):
            return None
        return path

    def _publish(self, path: Path) -> str:
        """The published name of ``path``, copied there first if it is not yet."""
        data = path.read_bytes()
        name = hashlib.sha256(data).hexdigest()[:24] + path.suffix.lower()
        target = self.folder / name
        if not target.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".publishing-")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            Path(temporary).replace(target)  # whole or not at all, whoever else publishes it
        return name

    def issue(self, issue: Issue) -> Issue:
        """``issue`` with its heroes' local images published."""
        return replace(
            issue,
            sections=tuple(
                IssueSection(s.topic, tuple(self._post(p) for p in s.posts), s.more)
                for s in issue.sections
            ),
        )

    def _post(self, stored: StoredPost) -> StoredPost:
        image = stored.post.image
        if image is None:
            return stored
        url = self.url(image.url)
        if url == image.url or url is None:
            return stored
        return replace(stored, post=replace(stored.post, image=replace(image, url=url)))


def published_file(base_dir: Path, name: str) -> Path | None:
    """The published image ``/images/<name>`` names, if there is one: a bare hashed name,
    nothing else of the folder."""
    stem, _, suffix = name.partition(".")
    if len(stem) != 24 or not all(c in "0123456789abcdef" for c in stem):
        return None
    if f".{suffix}" not in MAGIC:
        return None
    path = base_dir.resolve() / PUBLISHED_FOLDER / name
    return path if path.is_file() else None
