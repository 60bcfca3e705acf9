"""Exactly once, counted at the (local SendGrid-compatible) server: through injected faults,
through SIGKILLs at chosen points followed by resumes, and with two workers sharing an issue.
Every point where a test acts is an event the server reports (a request held, an answer read),
never a sleep: the tests mean the same on a loaded machine."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select, text

from digest import db
from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import load_config
from digest.send import ledger, reporting
from subscribers.importer import ImportRow
from subscribers.store import SubscriberStore
from tests.conftest import DEMO_NOW
from tests.digest.send.kill_points import CHILD_ENV, IN_FLIGHT, KILL_POINTS, run_and_kill
from tests.held_requests import PATIENCE_SECONDS, Hold, Key
from tests.sendgrid_server import API_KEY, SendGridServer, running

TOPICS = ["backend", "ai-ml", "data", "frontend"]
HANDED = ledger.HANDED


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for the project's own SQLite file; else an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return None
    import os

    url = os.environ.get("DIGEST_TEST_DATABASE_URL")
    if not url:
        pytest.skip("DIGEST_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    return emptied(url)


def emptied(url: str) -> str:
    """The PostgreSQL database at ``url``, emptied of every table."""
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def big_project(
    tmp_path: Path,
    readers: int,
    batch_size: int,
    database_url: str | None = None,
    outbox: Path | None = None,
) -> Project:
    """``readers`` on four topics, sending through SendGrid, or to ``outbox`` when given."""
    from digest.scaffold import scaffold

    path = scaffold(tmp_path / "site")
    text = re.sub(r"(?m)^batch_size = [^\n]*\n", "", path.read_text(encoding="utf-8"))
    transport = (
        f'transport = "outbox"\noutbox_dir = "{outbox}"\n' if outbox else 'transport = "sendgrid"\n'
    )
    text = re.sub(r"(?m)^outbox_dir = [^\n]*\n", "", text).replace(
        'transport = "outbox"',
        f"{transport}batch_size = {batch_size}\nin_flight = {IN_FLIGHT}\nlease_minutes = 120",
    )
    if database_url is not None:
        text = f'database_url = "{database_url}"\n' + text
    # A request the server holds is never given up on while a test needs it held.
    path.write_text(
        text + "\n[sending.sendgrid]\ntimeout_seconds = 600\nretries = 8\n", encoding="utf-8"
    )
    project = Project.open(
        load_config(path, {"DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq"}),
        clock=lambda: DEMO_NOW,
    )
    rng = random.Random(3)
    rows = [
        ImportRow(
            i,
            f"reader{i}@example.com",
            f"Reader {i}",
            frozenset(rng.sample(TOPICS, rng.randint(1, 4))),
        )
        for i in range(readers)
    ]
    with project.engine.begin() as conn:
        SubscriberStore(conn).upsert(rows, DEMO_NOW, "test")
    gathering.gather_sources(project)
    return project


def test_ten_thousand_readers_through_thirty_percent_faults(tmp_path: Path, corpus: Path) -> None:
    project = big_project(tmp_path, 10_000, 1000)
    with running(corpus / "sendgrid" / "mail_send_request.schema.json", fault_rate=0.3) as server:
        from dataclasses import replace

        project.config = replace(
            project.config,
            secrets=replace(
                project.config.secrets, sendgrid_api_key=API_KEY, sendgrid_api_host=server.host
            ),
        )
        transport = project.sendgrid()
        transport.sleep = lambda seconds: None
        # Under test is that every fault is retried and nobody gets two: with the default five
        # tries, one request in a few hundred would meet five faults in a row and stop the send.
        transport.retries = 20
        _, report = sending.send(project, transport=transport)
    assert report is not None and report.finished and report.submitted == 10_000
    assert server.rejected == []
    assert len(server.received) == 10_000 and set(server.received.values()) == {1}


@pytest.mark.parametrize("policy", ["skip", "resend"])
def test_sigkill_at_each_kill_point_then_resume(
    tmp_path: Path, database_url: str | None, policy: str
) -> None:
    """Killed at each kill point in turn, a run each, then resumed to the end: nobody is
    lost, and a reader gets the issue twice only with ``resend``, once for each request the
    provider took whose answer the sender never recorded."""
    project = big_project(tmp_path, 2_000, 25, database_url)
    issue_cases.plan(project)
    script = Path(__file__).with_name("crash_send.py")

    def command(server: SendGridServer, run: int) -> list[str]:
        host = f"{server.host}/run{run}"
        return [sys.executable, str(script), str(project.config.path), host, policy, API_KEY]

    url = project.config.database_url
    holds: list[Hold] = []
    at_death: list[dict[Key, str]] = []
    """Each run's ledger once the sender was dead: reader → state."""
    with running() as server:
        for run, point in enumerate(KILL_POINTS, start=1):
            holds.append(run_and_kill(server, command(server, run), f"/run{run}", point, url))
            at_death.append({reader: state for reader, (state, _) in ledger_of(project).items()})
        final = subprocess.run(
            command(server, len(KILL_POINTS) + 1),
            env=CHILD_ENV,
            stdout=subprocess.PIPE,
            text=True,
            timeout=PATIENCE_SECONDS,
            check=False,
        )
    server.wait_idle()  # the dead senders' last requests are read and taken, or never will be
    assert final.returncode == 0
    report = json.loads(final.stdout.strip().splitlines()[-1])
    assert report["finished"]
    check_resumed_send(policy, server.received, ledger_of(project), holds, at_death)
    if policy == "skip":
        latest = issue_cases.latest(project)
        assert latest is not None and latest.id is not None
        with project.engine.connect() as conn:
            counts = reporting.counts(conn, latest.id)
        assert report["ambiguous"] == counts[ledger.AMBIGUOUS] > 0  # reported, not re-sent


def check_resumed_send(
    policy: str,
    received: Counter[Key],
    final: Mapping[Key, tuple[str, int]],
    holds: Sequence[Hold],
    at_death: Sequence[Mapping[Key, str]],
    readers: int = 2_000,
) -> None:
    """The server's count of each reader against the ledger's account of it, and against
    what the test knows of each run: which requests the server took, and which batches the
    ledger still had in flight when the sender died."""
    assert len(final) == readers and set(received) <= set(final)  # nobody outside the issue
    in_flight_at_death: Counter[Key] = Counter()
    unrecorded: Counter[Key] = Counter()
    """Taken by the server while the ledger kept the batch in flight: posted, never answered
    in the ledger (held at the kill, or answered and not yet recorded)."""
    lost: set[Key] = set()
    for hold, ledger_then in zip(holds, at_death, strict=True):
        in_flight_at_death.update(r for r, state in ledger_then.items() if state == HANDED)
        for request in hold.held:
            # Every request caught at the kill point was in flight in the ledger.
            assert {ledger_then[r] for r in request.recipients} == {HANDED}
        taken = hold.passed + (hold.held if hold.taken else [])
        for request in taken:
            unrecorded.update(r for r in request.recipients if ledger_then[r] == HANDED)
        if not hold.taken:
            lost.update(r for request in hold.held for r in request.recipients)
    assert unrecorded and lost
    for reader, (state, ambiguities) in final.items():
        # A batch in flight when its sender died was found ambiguous by the next run, once.
        assert ambiguities == in_flight_at_death[reader], reader
        if policy == "resend":
            assert state == ledger.SUBMITTED, reader
            # Duplicates: exactly the requests taken without an answer the ledger recorded,
            # so never more than the times the reader's batch was found ambiguous.
            assert received[reader] == 1 + unrecorded[reader], reader
        else:
            assert received[reader] <= 1, reader
            answered = received[reader] == 1 and not unrecorded[reader]
            assert state == (ledger.SUBMITTED if answered else ledger.AMBIGUOUS), reader
            assert reader not in lost or received[reader] == 0, reader


def ledger_of(project: Project) -> dict[Key, tuple[str, int]]:
    """Each reader of the issue, as the server names it, with its state and its batch's
    count of ambiguities."""
    d, b = db.deliveries.c, db.send_batches.c
    with project.engine.connect() as conn:
        rows = conn.execute(
            select(d.issue_id, d.subscriber_id, ledger.STATE, b.ambiguities).select_from(
                db.deliveries.join(db.send_batches, b.id == d.batch_id)
            )
        ).all()
    return {(str(i), str(s)): (state, int(n)) for i, s, state, n in rows}


def test_two_workers_share_an_issue(tmp_path: Path, database_url: str | None) -> None:
    project = big_project(tmp_path, 3_000, 20, database_url)
    planned = issue_cases.plan(project)
    assert planned is not None
    with running() as server:
        # The first requests are held until more are in flight than one worker ever has:
        # then both workers have joined and each has a batch under way, however long the
        # second took to start (without this, the first could send all 150 batches first).
        server.holds[""] = together = Hold(barrier=IN_FLIGHT + 1)
        script = Path(__file__).with_name("run_worker.py")
        args = [sys.executable, str(script), str(project.config.path), server.host, API_KEY]
        workers = [
            subprocess.Popen(args, env=CHILD_ENV, stdout=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        try:
            outputs = [w.communicate(timeout=PATIENCE_SECONDS)[0] for w in workers]
        finally:
            for worker in workers:
                worker.kill()  # a worker that hangs is not left behind
                worker.wait()
    assert all(w.returncode == 0 for w in workers)
    assert together.released and len(together.held) == IN_FLIGHT + 1
    sent = [int(out.strip().splitlines()[-1]) for out in outputs]
    assert len(server.received) == 3_000 and set(server.received.values()) == {1}
    assert all(n > 0 for n in sent), f"both workers should have sent batches: {sent}"
    with project.engine.connect() as conn:
        # A worker joining never took over the other's leased batches.
        assert reporting.ambiguities(conn, planned.issue.id or 0) == 0
