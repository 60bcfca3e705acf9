"""Run by the crash-resume test as a subprocess: send the planned issue to the local SendGrid
server, and be killed with SIGKILL at a moment the test picks (told by the server, see
tests/held_requests.py); a run that is not killed prints its report as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event

from digest import db
from digest.app import sending
from digest.app.wiring import Project
from digest.config import load_config

LOCK_PATIENCE_MS = 600_000
"""On SQLite, how long a write waits for the database's lock. The test holds that lock while
it kills this process (an answer read, its outcome not yet recorded): waiting the usual ten
seconds, a slow kill on a loaded machine would end the send with "database is locked"."""


def main() -> None:
    print(json.dumps(send_once(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4])))


def send_once(config_path: Path, host: str, policy: str, key: str) -> dict[str, Any]:
    """One run of the sender, as `digest send` (``policy``: skip or resend), or as
    `digest send --resend-ambiguous --issue 1` (``policy`` "issue-1"); its report."""
    config = load_config(
        config_path,
        {
            "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
            "SENDGRID_API_KEY": key,
            "SENDGRID_API_HOST": host,
        },
    )
    engine = db.make_engine(config.database_url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _patient_locks)  # after make_engine's own pragmas
    project = Project.open(config, engine=engine)
    if policy == "issue-1":
        _, report = sending.resend_ambiguous(project, None, 1)
    else:
        _, sent = sending.send(project, ambiguous_policy=policy)  # type: ignore[arg-type]
        assert sent is not None
        report = sent
    return {
        "submitted": report.submitted,
        "ambiguous": report.ambiguous,
        "finished": report.finished,
    }


def _patient_locks(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={LOCK_PATIENCE_MS}")
    cursor.close()


if __name__ == "__main__":
    main()
