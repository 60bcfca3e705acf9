"""Fault injection on both databases: a 20,000-recipient SendGrid send SIGKILLed at twenty
points, then resumed and its ambiguous batches sent again (`--resend-ambiguous --issue 1`);
and an outbox send stopped by a full disk again and again. Counted at the server from the raw
request bodies it took, and in the outbox folder: every recipient at least once, a duplicate
only for a request the provider took whose answer the ledger never recorded, nobody lost.

The kill points are events (a request the server holds, an answer read while the test holds
the ledger's lock; see kill_points.py), never sleeps. The runs are forked from a process that
has the app imported (fork_sender.py), so that twenty runs do not cost twenty imports."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from digest.app import issues as issue_cases
from digest.send import ledger
from tests.digest.send.kill_points import IN_FLIGHT, KillPoint, fork_server, run_and_kill
from tests.digest.send.test_exactly_once import (
    big_project,
    check_resumed_send,
    database_url,  # noqa: F401  (the fixture: SQLite, then PostgreSQL)
    ledger_of,
)
from tests.held_requests import Hold, Key
from tests.sendgrid_server import API_KEY, SendGridServer, running

READERS = 20_000

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

