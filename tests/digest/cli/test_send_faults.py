"""`digest send` when its surroundings fail: a full or read-only outbox disk, a database file
that is corrupt or whose folder is gone, a PostgreSQL server nobody listens for or that goes
away mid-send. Each is one
line on stderr naming what failed, a non-zero exit and no traceback; the deliveries that were
not written stay pending in the ledger, and the run after the fault is mended sends them,
each reader's message once. The disks are real (a small tmpfs, see tests/disks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import load_config
from digest.send import ledger, reporting
from tests.conftest import FixedClock, free_port
from tests.digest.send.kill_points import CHILD_ENV
from tests.digest.send.test_send import project_with
from tests.disks import tmpfs
from tests.held_requests import Hold
from tests.sendgrid_server import API_KEY, running
from tests.tcp_proxy import proxy_to

READERS = 29
"""The example site's active readers."""


def site(tmp_path: Path, clock: FixedClock, outbox: Path, database: str = "") -> Project:
    top = f'database_url = "{database}"\n' if database else ""
    return project_with(tmp_path, clock, f'outbox_dir = "{outbox}"\nbatch_size = 4\n', top=top)


def digest(project: Project, *args: str) -> tuple[int, str, str]:
    """The command as a user runs it (its own process, the console script's error path)."""
    result = subprocess.run(
        [sys.executable, "-m", "digest", *args, "--config", str(project.config.path)],
        env={
            **CHILD_ENV,
            "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
            "COLUMNS": "80",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result.returncode, result.stdout, result.stderr


def one_line(stderr: str, *names: str) -> str:
    """The error, checked to be one line naming each of ``names``, without a traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def ledger_counts(project: Project) -> Counter[str]:
    issue = issue_cases.latest(project)
    if issue is None or issue.id is None:
        return Counter()
    with project.engine.connect() as conn:
        return reporting.counts(conn, issue.id)


def messages(outbox: Path) -> list[Path]:
    """The whole messages in the outbox; nothing else may be there (no temporary file)."""
    found = [p for p in outbox.rglob("*") if p.is_file()]
    assert all(p.suffix == ".eml" for p in found), found
    return found


def sends_the_rest(project: Project, outbox: Path) -> None:
    code, _, err = digest(project, "send")
    assert code == 0, err
    assert ledger_counts(project) == {ledger.SUBMITTED: READERS}
    written = messages(outbox)
    # One file per reader, named by subscriber: a message written twice would be one file,
    # so count the readers named in them too.
    assert len(written) == len({p.name.split("-")[0] for p in written}) == READERS


def test_a_full_outbox_disk_is_one_line_and_the_unwritten_stay_pending(
    tmp_path: Path, clock: FixedClock
) -> None:
    with tmpfs(tmp_path / "disk", "200k") as disk:
        outbox = disk.path / "outbox"
        project = site(tmp_path, clock, outbox)
        code, _, err = digest(project, "send")
        assert code == 2
        one_line(err, "outbox", str(outbox), "No space left on device")
        written = len(messages(outbox))
        assert 0 < written < READERS
        # Each whole file is a delivery submitted; whatever did not fit is pending.
        assert ledger_counts(project) == {
            ledger.SUBMITTED: written,
            ledger.PENDING: READERS - written,
        }
        disk.grow()
        sends_the_rest(project, outbox)


def test_an_outbox_and_database_on_one_full_disk_lose_nothing(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The site's default layout: the database file beside the outbox. Once the disk is full
    the ledger cannot record what was written; the next run learns it from the files."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        outbox = disk.path / "outbox"
        project = site(tmp_path, clock, outbox, f"sqlite:///{disk.path / 'digest.sqlite3'}")
        disk.fill(leave_bytes=160_000)
        code, _, err = digest(project, "send")
        assert code == 2
        line = one_line(err)
        assert "database_url" in line or str(outbox) in line, line
        written = len(messages(outbox))
        assert written < READERS
        counts = ledger_counts(project)
        assert not counts[ledger.AMBIGUOUS] and counts[ledger.SUBMITTED] <= written
        (disk.path / "filler").unlink()
        disk.grow()
        sends_the_rest(project, outbox)


def test_a_read_only_outbox_is_one_line_and_everyone_stays_pending(
    tmp_path: Path, clock: FixedClock
) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        outbox = disk.path / "outbox"
        project = site(tmp_path, clock, outbox)
        disk.remount("ro")
        code, _, err = digest(project, "send")
        assert code == 2
        one_line(err, "outbox", str(outbox), "Read-only file system")
        assert ledger_counts(project) == {ledger.PENDING: READERS}
        disk.remount("rw")
        sends_the_rest(project, outbox)


def test_a_corrupt_database_file_is_one_line_naming_database_url(
    tmp_path: Path, clock: FixedClock
) -> None:
    project = site(tmp_path, clock, tmp_path / "outbox")
    database = Path(project.config.database_url.removeprefix("sqlite:///"))
    project.engine.dispose()
    kept = database.read_bytes()
    database.write_bytes(b"not a database, whatever it was" * 200)
    code, _, err = digest(project, "send")
    assert code == 2
    one_line(err, "database_url", str(database))
    assert not (tmp_path / "outbox").exists()
    database.write_bytes(kept)
    sends_the_rest(project, tmp_path / "outbox")


def test_a_database_whose_folder_is_gone_is_one_line_naming_database_url(
    tmp_path: Path, clock: FixedClock
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    project = site(tmp_path, clock, tmp_path / "outbox", f"sqlite:///{folder / 'digest.sqlite3'}")
    project.engine.dispose()
    folder.rename(tmp_path / "elsewhere")
    code, _, err = digest(project, "send")
    assert code == 2
    one_line(err, "database_url", str(folder), "does not exist")
    (tmp_path / "elsewhere").rename(folder)
    assert ledger_counts(project) == {}  # nothing was planned, nothing recorded
    sends_the_rest(project, tmp_path / "outbox")


def test_a_postgresql_nobody_listens_for_is_one_line_naming_database_url(
    tmp_path: Path, clock: FixedClock
) -> None:
    url = os.environ.get("DIGEST_TEST_DATABASE_URL")
    if not url:
        pytest.skip("DIGEST_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    from tests.digest.send.test_exactly_once import emptied

    project = site(tmp_path, clock, tmp_path / "outbox", emptied(url))
    config = project.config.path
    text = config.read_text(encoding="utf-8")
    closed = f"postgresql+psycopg://digest:secret-pw@127.0.0.1:{free_port()}/digest"
    config.write_text(text.replace(url, closed), encoding="utf-8")
    code, _, err = digest(project, "send")
    assert code == 2
    line = one_line(err, "database_url", f"127.0.0.1:{closed.rsplit(':', 1)[1].split('/')[0]}")
    assert "secret-pw" not in line
    config.write_text(text, encoding="utf-8")
    sends_the_rest(project, tmp_path / "outbox")


def test_a_postgresql_that_goes_away_mid_send_is_one_line_and_loses_nobody(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The database behind a send goes away while a request is under way (every connection
    cut): one line naming database_url, exit 2; the next run finds the batches handed over
    ambiguous and the rest pending, and with the resend every reader has the issue."""
    url = os.environ.get("DIGEST_TEST_DATABASE_URL")
    if not url:
        pytest.skip("DIGEST_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    from tests.digest.send.test_exactly_once import emptied

    real = make_url(emptied(url))
    with proxy_to(real.host or "127.0.0.1", real.port or 5432) as proxy:
        through = real.set(host="127.0.0.1", port=proxy.port)
        project = project_with(
            tmp_path,
            clock,
            'transport = "sendgrid"\nbatch_size = 4\nlease_minutes = 60\n',
            tables="\n[sending.sendgrid]\ntimeout_seconds = 600\nretries = 0\n",
            top=f'database_url = "{through.render_as_string(hide_password=False)}"\n',
        )
        with running() as server:
            server.holds[""] = hold = Hold(3)
            child = subprocess.Popen(
                [sys.executable, "-m", "digest", "send", "--config", str(project.config.path)],
                env={
                    **CHILD_ENV,
                    "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
                    "SENDGRID_API_KEY": API_KEY,
                    "SENDGRID_API_HOST": server.host,
                },
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                hold.wait_held(1, child)
                proxy.cut()
                hold.release()
                _, err = child.communicate(timeout=600)
            finally:
                child.kill()
                child.wait()
            assert child.returncode == 2
            one_line(err, "database_url", f"127.0.0.1:{proxy.port}")
            config = project.config.path
            text = config.read_text(encoding="utf-8")
            config.write_text(
                text.replace(
                    through.render_as_string(hide_password=False),
                    real.render_as_string(hide_password=False),
                ),
                encoding="utf-8",
            )
            env = {
                "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
                "SENDGRID_API_KEY": API_KEY,
                "SENDGRID_API_HOST": server.host,
            }
            again = subprocess.run(
                [sys.executable, "-m", "digest", "send", "--config", str(config)],
                env={**CHILD_ENV, **env},
                capture_output=True,
                text=True,
                check=False,
            )
            assert again.returncode == 0, again.stderr
            reopened = Project.open(
                load_config(
                    config, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}
                ),
                clock=clock,
            )
            counts = ledger_counts(reopened)
            posted = {r for request in hold.passed + hold.held for r in request.recipients}
            # Ambiguous: at most what was posted before the database went away.
            assert counts[ledger.AMBIGUOUS] <= len(posted)
            assert counts[ledger.SUBMITTED] + counts[ledger.AMBIGUOUS] == READERS
            resent = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "digest",
                    "send",
                    "--resend-ambiguous",
                    "--issue",
                    "1",
                    "--config",
                    str(config),
                ],
                env={**CHILD_ENV, **env},
                capture_output=True,
                text=True,
                check=False,
            )
            assert resent.returncode == 0, resent.stderr
            assert ledger_counts(reopened) == {ledger.SUBMITTED: READERS}
            reopened.engine.dispose()
        server.wait_idle()
        assert len(server.received) == READERS  # nobody lost
