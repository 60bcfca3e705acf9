"""Fault injection on both databases: a 20,000-recipient SendGrid send SIGKILLed at twenty
points, then resumed and its ambiguous batches sent again (`--resend-ambiguous --issue 1`);
and an outbox send stopped by a full disk again and again. Counted at the server from the raw
request bodies it took, and in the outbox folder: every recipient at least once, a duplicate
only for a request the provider took whose answer the ledger never recorded, nobody lost.

The disk is a real one, a small tmpfs (tests/disks.py). The kill points are events (a
request the server holds, an answer read while the test holds the ledger's lock; see
kill_points.py), never sleeps. The runs are forked from a process that
has the app imported (fork_sender.py), so that twenty runs do not cost twenty imports."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from digest.app import issues as issue_cases
from digest.app import sending
from digest.errors import ProviderDown
from digest.send import ledger
from tests.digest.send.kill_points import IN_FLIGHT, KillPoint, fork_server, run_and_kill
from tests.digest.send.test_exactly_once import (
    big_project,
    check_resumed_send,
    database_url,  # noqa: F401  (the fixture: SQLite, then PostgreSQL)
    ledger_of,
)
from tests.disks import tmpfs
from tests.held_requests import Hold, Key
from tests.sendgrid_server import API_KEY, SendGridServer, running

READERS = 20_000
OUTBOX_READERS = 600
"""About 60 KB each: 36 MB of messages, through a disk given 5 MB more after each stop."""

TWENTY = (
    KillPoint("1st request held, taken", 1),
    KillPoint("3rd to 6th held together, lost", 3, held=IN_FLIGHT, taken=False),
    KillPoint("2nd answered and read, its outcome not recorded", 2, answered=True),
    KillPoint("9th held, taken", 9),
    KillPoint("1st held, lost", 1, taken=False),
    KillPoint("5th and 6th held, taken", 5, held=2),
    KillPoint("4th answered and read, not recorded", 4, answered=True),
    KillPoint("12th to 15th held, taken", 12, held=IN_FLIGHT),
    KillPoint("2nd held, lost", 2, taken=False),
    KillPoint("7th answered and read, not recorded", 7, answered=True),
    KillPoint("1st to 4th held, lost", 1, held=IN_FLIGHT, taken=False),
    KillPoint("6th held, taken", 6),
    KillPoint("3rd answered and read, not recorded", 3, answered=True),
    KillPoint("10th to 12th held, lost", 10, held=3, taken=False),
    KillPoint("8th held, taken", 8),
    KillPoint("1st answered and read, not recorded", 1, answered=True),
    KillPoint("4th to 7th held, taken", 4, held=IN_FLIGHT),
    KillPoint("11th held, lost", 11, taken=False),
    KillPoint("5th answered and read, not recorded", 5, answered=True),
    KillPoint("2nd and 3rd held, taken", 2, held=2),
)
"""Each kill lands with requests posted and unanswered, or answered with their outcome not
yet recorded (killed while recording), and mostly with batches leased in the sender's
reserve, never handed over (between lease and POST: they must come back pending, not
ambiguous)."""


def test_twenty_sigkills_then_resume_and_resend_lose_nobody(
    tmp_path: Path,
    database_url: str | None,  # noqa: F811
) -> None:
    project = big_project(tmp_path, READERS, 100, database_url)
    issue_cases.plan(project)
    script = Path(__file__).with_name("crash_send.py")

    def command(server: SendGridServer, run: int, policy: str = "skip") -> list[str]:
        host = f"{server.host}/run{run}"
        return ["python", str(script), str(project.config.path), host, policy, API_KEY]

    url = project.config.database_url
    holds: list[Hold] = []
    at_death: list[dict[Key, str]] = []
    with running() as server, fork_server() as forks:
        for run, point in enumerate(TWENTY, start=1):
            holds.append(
                run_and_kill(server, command(server, run), f"/run{run}", point, url, forks.start)
            )
            at_death.append({reader: state for reader, (state, _) in ledger_of(project).items()})
        resumed = forks.start(command(server, 21)).report()
        resent = forks.start(command(server, 22, "issue-1")).report()
    server.wait_idle()
    # The first run's four requests were all held: the four batches behind them, leased in
    # its reserve, were never handed over. check_resumed_send sees them come back pending:
    # a reader's batch is ambiguous once for each time it was handed over at a death.
    reserve = Counter(at_death[0].values())[ledger.SUBMITTING]
    assert reserve > 0
    assert resumed["finished"] and resent["finished"]
    final = ledger_of(project)
    assert Counter(state for state, _ in final.values()) == {ledger.SUBMITTED: READERS}
    check_resumed_send("resend", server.received, final, holds, at_death, READERS)
    assert len(server.received) == READERS  # every recipient at least once: nobody lost
    duplicates = sum(server.received.values()) - READERS
    posted_unanswered = sum(
        len(request.recipients)
        for hold, then in zip(holds, at_death, strict=True)
        for request in hold.passed + (hold.held if hold.taken else [])
        if {then[r] for r in request.recipients} == {ledger.HANDED}
    )
    assert 0 < duplicates == posted_unanswered


def test_an_outbox_disk_that_fills_again_and_again_loses_nobody_and_writes_each_once(
    tmp_path: Path,
    database_url: str | None,  # noqa: F811
) -> None:
    """600 readers to an outbox on a disk that fills up: each run stops with the disk's
    error, every whole file is a delivery submitted and every other one pending (none
    ambiguous: a file that did not complete was not handed over); the disk is given a little
    more room each time, until the issue is sent."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        outbox = disk.path / "outbox"
        project = big_project(tmp_path, OUTBOX_READERS, 50, database_url, outbox)
        issue_cases.plan(project)
        stops = 0
        while True:
            try:
                _, report = sending.send(project)
            except ProviderDown as stop:
                assert "No space left on device" in str(stop) and str(outbox) in str(stop)
                stops += 1
            else:
                assert report is not None and report.finished
                break
            written = outbox_files(outbox)
            states = Counter(state for state, _ in ledger_of(project).values())
            assert states == {
                ledger.SUBMITTED: len(written),
                ledger.PENDING: OUTBOX_READERS - len(written),
            }
            size = os.statvfs(disk.path)
            disk.remount(f"size={size.f_blocks * size.f_frsize + 5 * 1024 * 1024}")
        assert stops >= 4
        written = outbox_files(outbox)
        assert len(written) == len(set(written)) == OUTBOX_READERS
        assert Counter(state for state, _ in ledger_of(project).values()) == {
            ledger.SUBMITTED: OUTBOX_READERS
        }


def outbox_files(outbox: Path) -> list[int]:
    """The readers whose message is in the outbox, a file each; nothing else is there (no
    temporary file left by a write that failed)."""
    files = [p for p in outbox.rglob("*") if p.is_file()]
    assert all(p.suffix == ".eml" for p in files), files
    return [int(p.name.split("-")[0]) for p in files]
