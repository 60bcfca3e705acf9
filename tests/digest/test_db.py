"""A database the commands cannot use is one line naming ``database_url``, not a traceback."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from digest import db
from digest.cli import main
from digest.scaffold import scaffold
from tests.conftest import free_port


@pytest.fixture
def plan_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], list[str]]:
    """Runs ``digest plan`` on the example site as the console script does, with another
    ``database_url``; gives the lines it printed on stderr."""

    def plan(database_url: str) -> list[str]:
        config = scaffold(tmp_path / "site")
        text = config.read_text(encoding="utf-8")
        config.write_text(f'database_url = "{database_url}"\n{text}', encoding="utf-8")
        monkeypatch.setattr(sys, "argv", ["digest", "plan", "--config", str(config)])
        with pytest.raises(SystemExit) as exited:
            main()
        assert exited.value.code == 2
        return capsys.readouterr().err.splitlines()

    return plan


def test_nothing_listening_on_the_port(plan_with: Callable[[str], list[str]]) -> None:
    url = f"postgresql+psycopg://reader:s3cret@127.0.0.1:{free_port()}/digest"
    [line] = plan_with(url)
    assert line.startswith("error: database_url: cannot open postgresql+psycopg://reader:***@")
    assert "Connection refused" in line and "s3cret" not in line and "Traceback" not in line


def test_a_file_that_is_not_a_database(
    tmp_path: Path, plan_with: Callable[[str], list[str]]
) -> None:
    garbage = tmp_path / "digest.sqlite3"
    garbage.write_bytes(b"\x00\xffnot sqlite at all\x13" * 512)
    [line] = plan_with(f"sqlite:///{garbage}")
    assert line == f"error: database_url: cannot open sqlite:///{garbage}: file is not a database"


def test_a_folder_that_does_not_exist(
    tmp_path: Path, plan_with: Callable[[str], list[str]]
) -> None:
    missing = tmp_path / "missing"
    [line] = plan_with(f"sqlite:///{missing / 'digest.sqlite3'}")
    assert line == f"error: database_url: folder {missing} does not exist"


def test_a_folder_where_the_file_should_be(
    tmp_path: Path, plan_with: Callable[[str], list[str]]
) -> None:
    [line] = plan_with(f"sqlite:///{tmp_path}")
    assert (
        line
        == f"error: database_url: cannot open sqlite:///{tmp_path}: unable to open database file"
    )


def _writing(path: Path) -> sqlite3.Connection:
    """A connection in the middle of a write to a new file (in its default journal mode)."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t VALUES (1)")
    return writer


def test_the_switch_to_wal_waits_out_a_writer_holding_the_new_file(tmp_path: Path) -> None:
    """SQLite refuses the switch at once, busy wait or not, while another connection writes:
    the switch is tried again once the writer is done (here, when it is told to wait)."""
    path = tmp_path / "new.sqlite3"
    writer = _writing(path)
    opener = sqlite3.connect(path, isolation_level=None)
    opener.execute("PRAGMA busy_timeout=10000")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        writer.execute("COMMIT")

    db.switch_to_wal(opener.cursor(), sleep=sleep)
    assert len(waits) == 1
    assert opener.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_switch_to_wal_gives_up_after_the_busy_wait(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    writer = _writing(path)
    opener = sqlite3.connect(path, isolation_level=None)
    moments = iter([0.0, 1.0, db.SQLITE_BUSY_SECONDS + 1.0])
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db.switch_to_wal(opener.cursor(), sleep=lambda _: None, clock=lambda: next(moments))
    writer.execute("ROLLBACK")
