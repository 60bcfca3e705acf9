"""The example site with three cadences and local delivery: the configuration the cadence and
time-zone tests of the readers' and editors' faces share."""

from __future__ import annotations

from pathlib import Path

from digest.config import Config, load_config
from digest.scaffold import scaffold

CADENCES = """timezone = "Europe/Berlin"
cadences = { daily = "0 8 * * *", weekly = "0 8 * * mon", monthly = "0 8 1 * *" }
default_cadence = "weekly"
local_delivery = true
"""


def cadence_config(folder: Path, environ: dict[str, str]) -> Config:
    """The example site in ``folder``, its digest offering daily, weekly (the default) and
    monthly, at 08:00 in each reader's zone."""
    site = scaffold(folder)
    toml = site if site.suffix == ".toml" else site / "digest.toml"
    text = toml.read_text(encoding="utf-8")
    assert 'timezone = "Europe/Berlin"\n' in text
    toml.write_text(text.replace('timezone = "Europe/Berlin"\n', CADENCES, 1), encoding="utf-8")
    return load_config(site, environ)
