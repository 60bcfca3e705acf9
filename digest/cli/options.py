"""The options most commands share, and the project they name."""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated

import typer

from digest.app.wiring import Project
from digest.config import Config, load_config, resolve_config_path

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="digest.toml to use, given before or after the command (else $DIGEST_CONFIG, "
        "else ./digest.toml)",
    ),
]
DigestOption = Annotated[
    str | None, typer.Option("--digest", "-d", help="digest slug (default: the first one)")
]
CadenceOption = Annotated[
    str | None,
    typer.Option("--cadence", help="which of the digest's cadences (default: its default one)"),
]


def config_at(path: Path | None) -> Config:
    """The config a command names with --config, else the one named before the command
    (``digest --config PATH run``), else $DIGEST_CONFIG, else ./digest.toml."""
    return load_config(resolve_config_path(path or given_before(), os.environ), os.environ)


def given_before() -> Path | None:
    """The --config given before the command (``digest --config PATH run``), if any."""
    return _before.get()


def remember_before(path: Path | None) -> None:
    """Called by the top-level callback, which runs first in every invocation."""
    _before.set(path)


_before: ContextVar[Path | None] = ContextVar("config_before_command", default=None)


def open_project(path: Path | None) -> Project:
    return Project.open(config_at(path))
