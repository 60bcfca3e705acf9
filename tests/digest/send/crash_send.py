"""Run by the crash-resume test as a subprocess: send the planned issue to the local SendGrid
server, and be killed with SIGKILL at some moment the test picks."""

from __future__ import annotations

import sys
from pathlib import Path

from digest.app import sending
from digest.app.wiring import Project
from digest.config import load_config


def main() -> None:
    config_path, host, policy = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    config = load_config(
        config_path,
        {"DIGEST_SECRET_KEY": "k", "SENDGRID_API_KEY": sys.argv[4], "SENDGRID_API_HOST": host},
    )
    project = Project.open(config)
    sending.send(project, ambiguous_policy=policy)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
