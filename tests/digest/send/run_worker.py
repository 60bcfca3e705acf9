"""Run by the two-worker test as a subprocess: ``digest worker`` against the local server."""

from __future__ import annotations

import sys
from pathlib import Path

from digest.app import issues as issue_cases
from digest.app import sending
from digest.app.wiring import Project
from digest.config import load_config


def main() -> None:
    config = load_config(
        Path(sys.argv[1]),
        {
            "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
            "SENDGRID_API_KEY": sys.argv[3],
            "SENDGRID_API_HOST": sys.argv[2],
        },
    )
    project = Project.open(config)
    assert issue_cases.unfinished(project) is not None
    _, report = sending.send(project)
    assert report is not None
    print(report.submitted)


if __name__ == "__main__":
    main()
