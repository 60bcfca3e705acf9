"""``digest init``: a working project folder made from the bundled example site."""

from __future__ import annotations

import shutil
from pathlib import Path

from digest.errors import DigestError

IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "make_images.py", "outbox", "preview", "published", "*.sqlite3*"
)


def example_site() -> Path:
    """``digest/example_site`` in an installed wheel, else the repository's ``examples/site``."""
    package = Path(__file__).resolve().parent
    installed = package / "example_site"
    if installed.is_dir():
        return installed
    return package.parent / "examples" / "site"


def scaffold(target: Path) -> Path:
    """Copy the example site into ``target``; returns the config path. Never overwrites."""
    config = target / "digest.toml"
    if config.exists():
        raise DigestError("already holds a digest.toml; not overwriting it", where=str(target))
    if target.exists() and any(target.iterdir()):
        raise DigestError("exists and is not empty; choose a new folder", where=str(target))
    source = example_site()
    if not (source / "digest.toml").is_file():
        raise DigestError(f"the bundled example site is missing ({source})")
    shutil.copytree(source, target, ignore=IGNORED, dirs_exist_ok=True)
    (target / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
    return config


GITIGNORE = """\
# What digest writes as it runs: keep it out of version control (digest.toml, the feeds and
# images are yours to commit; the database holds your subscribers' addresses).
digest.sqlite3*
outbox/
preview/
published/
"""


def enclosing_checkout(folder: Path) -> Path | None:
    """The git working tree ``folder`` would be created in, if any: a project made there is
    an untracked folder in someone's checkout."""
    for parent in folder.resolve().parents:
        if (parent / ".git").exists():
            return parent
    return None
