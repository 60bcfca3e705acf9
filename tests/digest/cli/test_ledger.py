"""What an operator sees after a send went wrong: `digest send` fails loudly with the
provider's reason, `digest issues ledger N` shows the states, batches and reasons, and the
ambiguous batches of a closed issue can be sent again by number."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.app.wiring import Project
from digest.cli import app
from tests.conftest import FixedClock
from tests.digest.send.test_send import project_with
from tests.held_requests import Hold
from tests.sendgrid_server import API_KEY, SendGridServer, running


@pytest.fixture
def server(corpus: Path) -> Iterator[SendGridServer]:
    with running(corpus / "sendgrid" / "mail_send_request.schema.json") as sendgrid:
        yield sendgrid


def sendgrid_site(tmp_path: Path, clock: FixedClock) -> Project:
    return project_with(
        tmp_path,
        clock,
        sending='transport = "sendgrid"\nbatch_size = 10\n',
        tables="\n[sending.sendgrid]\ntimeout_seconds = 1\nretries = 0\n",
    )


def run(project: Project, server: SendGridServer, *args: str) -> tuple[int, str, str]:
    env = {
        "DIGEST_SECRET_KEY": "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq",
        "SENDGRID_API_KEY": API_KEY,
        "SENDGRID_API_HOST": server.host,
    }
    result = CliRunner(env=env).invoke(
        app, [*args, "--config", str(project.config.path)], catch_exceptions=False
    )
    return result.exit_code, " ".join(result.stdout.split()), " ".join(result.stderr.split())


def test_a_send_the_provider_refuses_exits_1_with_its_reason(
    tmp_path: Path, clock: FixedClock, server: SendGridServer
) -> None:
    project = sendgrid_site(tmp_path, clock)
    server.faults.extend(["400"] * 100)  # every request (a batch per segment) is refused
    code, out, err = run(project, server, "send")
    assert code == 1
    assert "Emails submitted: 0" in out and "failed: 29" in out
    assert re.search(rf"failed: 29 × sendgrid \S+: HTTP 400: {re.escape(server.refusal)}", err)
    code, out, _ = run(project, server, "issues", "ledger", "1")
    assert code == 0 and "│ failed │ 29 │" in out
    assert out.count(server.refusal) >= 3  # the batches, the reason, the readers listed


def test_ambiguous_batches_of_a_closed_issue_are_sent_again_by_number(
    tmp_path: Path, clock: FixedClock, server: SendGridServer
) -> None:
    project = sendgrid_site(tmp_path, clock)
    # The server takes the first batch and answers only once the sender gave up waiting (its
    # one-second timeout): the provider has it, the sender cannot know.
    server.holds[""] = Hold(count=1, until_hangup=True)
    code, out, _ = run(project, server, "send")
    sent = re.search(r"Emails submitted: (\d+)", out)
    assert code == 0 and sent is not None
    unknown = 29 - int(sent.group(1))
    assert 0 < unknown <= 10
    code, out, _ = run(project, server, "send")
    assert "Nothing new" in out  # the issue is closed: a plain send has nothing to do
    code, out, _ = run(project, server, "issues", "ledger", "1")
    assert f"│ ambiguous │ {unknown} │" in out and "--resend-ambiguous --issue 1" in out
    code, out, _ = run(project, server, "send", "--resend-ambiguous", "--issue", "1")
    assert code == 0 and f"Emails submitted: {unknown}" in out
    code, out, _ = run(project, server, "issues", "ledger", "1")
    assert "│ ambiguous │ 0 │" in out and "│ submitted │ 29 │" in out
    # The held batch was taken after all: its readers got it twice, as the policy warned.
    assert sum(server.received.values()) >= 29 and len(server.received) == 29
