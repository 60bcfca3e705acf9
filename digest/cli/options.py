"""The options most commands share, and the project they name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from digest.app.wiring import Project
from digest.config import Config, load_config, resolve_config_path

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="digest.toml to use (else $DIGEST_CONFIG, else ./digest.toml)"
    ),
]
DigestOption = Annotated[
    str | None, typer.Option("--digest", "-d", help="digest slug (default: the first one)")
]


def config_at(path: Path | None) -> Config:
    return load_config(resolve_config_path(path, os.environ), os.environ)


def open_project(path: Path | None) -> Project:
    return Project.open(config_at(path))
