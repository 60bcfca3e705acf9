"""``digest init``: a working project folder made from the bundled example site."""

from __future__ import annotations

import shutil
from pathlib import Path

from digest.errors import DigestError

IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "make_images.py", "outbox", "preview", "*.sqlite3*"
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
    return config
