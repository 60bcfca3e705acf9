"""Exactly once, counted at the (local SendGrid-compatible) server: through injected faults,
and through SIGKILLs at random moments followed by resumes."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from digest.app import gathering, sending
from digest.app import issues as issue_cases
from digest.app.wiring import Project
from digest.config import load_config
from digest.send import ledger, reporting
from subscribers.importer import ImportRow
from subscribers.store import SubscriberStore
from tests.conftest import DEMO_NOW
from tests.sendgrid_server import API_KEY, running

TOPICS = ["backend", "ai-ml", "data", "frontend"]


def big_project(
    tmp_path: Path, readers: int, batch_size: int, database_url: str | None = None
) -> Project:
    from digest.scaffold import scaffold

    path = scaffold(tmp_path / "site")
    text = re.sub(r"(?m)^batch_size = [^\n]*\n", "", path.read_text(encoding="utf-8"))
    text = text.replace(
        'transport = "outbox"', f'transport = "sendgrid"\nbatch_size = {batch_size}'
    )
    path.write_text(
        text + "\n[sending.sendgrid]\ntimeout_seconds = 5\nretries = 8\n", encoding="utf-8"
    )
    project = Project.open(load_config(path, {"DIGEST_SECRET_KEY": "k"}), clock=lambda: DEMO_NOW)
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
def test_sigkill_at_random_moments_then_resume(tmp_path: Path, policy: str) -> None:
    project = big_project(tmp_path, 2_000, 25)
    issue_cases.plan(project)
    rng = random.Random(11 if policy == "skip" else 12)
    with running() as server:
        # Each answer takes a moment, so that kills land while batches are in flight.
        server.latency_seconds = 0.05
        script = Path(__file__).with_name("crash_send.py")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
        args = [sys.executable, str(script), str(project.config.path), server.host, policy, API_KEY]
        for _ in range(20):
            child = subprocess.Popen(args, env=env)
            time.sleep(rng.uniform(0.6, 1.6))
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            child.wait()
        finished = subprocess.run(args, env=env, timeout=300, check=False)
        assert finished.returncode == 0
    with project.engine.connect() as conn:
        latest = issue_cases.latest(project)
        assert latest is not None and latest.id is not None
        issue_id = latest.id
        counts = reporting.counts(conn, issue_id)
        found_ambiguous = reporting.ambiguities(conn, issue_id)
    duplicates = sum(n - 1 for n in server.received.values())
    assert sum(counts.values()) == 2_000
    assert found_ambiguous > 0, "no kill landed while a batch was in flight"
    if policy == "skip":
        assert duplicates == 0
        assert counts[ledger.SUBMITTED] + counts[ledger.AMBIGUOUS] == 2_000
        assert counts[ledger.AMBIGUOUS] == found_ambiguous
        # Ambiguous ones may or may not have reached the server; submitted ones all did.
        assert counts[ledger.SUBMITTED] <= len(server.received) <= 2_000
    else:
        assert counts[ledger.SUBMITTED] == 2_000 and len(server.received) == 2_000
        # A duplicate is an ambiguous batch that had in fact arrived, then was re-sent: never
        # more duplicates than ambiguities (a kill between claim and POST makes one without).
        assert duplicates <= found_ambiguous


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_workers_share_an_issue(tmp_path: Path, database: str) -> None:
    url = None
    if database == "postgresql":
        url = os.environ.get("DIGEST_TEST_DATABASE_URL")
        if not url:
            pytest.skip("DIGEST_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
        from sqlalchemy import text

        from digest import db

        engine = db.make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    project = big_project(tmp_path, 3_000, 20, database_url=url)
    planned = issue_cases.plan(project)
    assert planned is not None
    with running() as server:
        # Answers take a while, as a real provider's do: without it, the first worker could
        # send all 150 batches before the second has finished starting.
        server.latency_seconds = 0.03
        script = Path(__file__).with_name("run_worker.py")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
        args = [sys.executable, str(script), str(project.config.path), server.host, API_KEY]
        workers = [
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
        ]
        outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers)
    sent = [int(out.strip().splitlines()[-1]) for out in outputs]
    assert len(server.received) == 3_000 and set(server.received.values()) == {1}
    assert all(n > 0 for n in sent), f"both workers should have sent batches: {sent}"
    with project.engine.connect() as conn:
        # A worker joining never took over the other's leased batches.
        assert reporting.ambiguities(conn, planned.issue.id or 0) == 0
