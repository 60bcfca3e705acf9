"""Read and validate ``digest.toml``.

Every problem is reported as one line naming the file, the exact key and what was expected,
because the person reading it is editing that file, not reading our code.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from digest.config.environment import Secrets
from digest.config.file import FileConfig
from digest.config.loaded import Config
from digest.errors import ConfigError


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "no such file (create one with `digest init DIR`, or pass --config)", where=str(path)
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror}", where=str(path)) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"not valid TOML: {err}", where=str(path)) from None
    try:
        parsed = FileConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_describe(err), where=str(path)) from None
    return Config(path=path.resolve(), file=parsed, secrets=Secrets.from_environ(environ))


def _describe(err: ValidationError) -> str:
    """Turn pydantic's errors into lines of ``key: what is expected, got …``."""
    lines = []
    for problem in err.errors():
        key = _dotted(problem["loc"])
        kind = problem["type"]
        message = str(problem["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if kind == "missing":
            lines.append(f"{key}: required key is missing")
        elif kind == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        elif kind == "value_error" and ": " in message and not key:
            lines.append(message)
        elif kind == "value_error" and message.split(":", 1)[0].isidentifier() and ": " in message:
            prefix, _, rest = message.partition(": ")
            lines.append(f"{key}.{prefix}: {rest}" if key else message)
        else:
            got = problem.get("input")
            shown = "" if isinstance(got, dict | list) else f", got {got!r}"
            lines.append(f"{key}: {message[0].lower()}{message[1:]}{shown}")
    return "\n".join(lines)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
