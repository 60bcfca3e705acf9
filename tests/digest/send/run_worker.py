"""Run by the two-worker test as a subprocess: ``digest worker`` against the local server."""

from __future__ import annotations

import sys
from pathlib import Path

from digest.config import load_config
from digest.pipeline import Project


def main() -> None:
    config = load_config(
        Path(sys.argv[1]),
        {
            "DIGEST_SECRET_KEY": "k",
            "SENDGRID_API_KEY": sys.argv[3],
            "SENDGRID_API_HOST": sys.argv[2],
        },
    )
    project = Project.open(config)
    assert project.unfinished() is not None
    _, report = project.send()
    assert report is not None
    print(report.submitted)


if __name__ == "__main__":
    main()
