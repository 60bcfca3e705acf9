"""The SendGrid transport against a local SendGrid-compatible server that validates every body
(official schema with DIGEST_CORPUS_DIR, documented limits always) and injects faults."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from digest.app import previews, sending
from digest.app.wiring import Project
from digest.errors import TransportError
from digest.personalize import compile_template, recipient_values, unfilled_tokens
from digest.send import ledger, reporting
from digest.send.batch import Recipient
from digest.send.sendgrid import MAX_PAYLOAD_BYTES, payload_problems, personal_parts_fit
from subscribers.tokens import Purpose
from tests.conftest import FixedClock
from tests.digest.send.test_hostile_send import outcomes
from tests.digest.send.test_send import project_with
from tests.held_requests import Hold
from tests.sendgrid_server import API_KEY, SendGridServer, running


def sendgrid_project(
    tmp_path: Path,
    clock: FixedClock,
    host: str,
    batch_size: int = 1000,
    timeout_seconds: int = 30,
    **options: str,
) -> Project:
    """A project that sends to the local server. The timeout is long enough that a loaded
    machine never makes a request time out, unless a test asks for a short one."""
    extra = "".join(f"{k} = {v}\n" for k, v in options.items())
    project = project_with(
        tmp_path,
        clock,
        sending=f'transport = "sendgrid"\nbatch_size = {batch_size}\n',
        tables=f"\n[sending.sendgrid]\ntimeout_seconds = {timeout_seconds}\nretries = 6\n{extra}",
    )
    from dataclasses import replace

    secrets = replace(project.config.secrets, sendgrid_api_key=API_KEY, sendgrid_api_host=host)
    project.config = replace(project.config, secrets=secrets)
    return project


def reserved_headers(schema: Path) -> set[str]:
    """The headers a request may not set, as the schema's ``headers`` description names them."""
    described = orjson.loads(schema.read_bytes())["properties"]["headers"]["description"]
    names = {name.lower() for name in re.findall(r"`([^`]+)`", described)}
    assert {"to", "from", "dkim-signature"} <= names, described
    return names


@pytest.fixture
def schema(corpus: Path) -> Path:
    return corpus / "sendgrid" / "mail_send_request.schema.json"


@pytest.fixture
def server(schema: Path) -> Iterator[SendGridServer]:
    with running(schema) as sendgrid:
        yield sendgrid


def test_every_payload_validates_and_reaches_each_reader_once(
    tmp_path: Path, clock: FixedClock, server: SendGridServer, schema: Path
) -> None:
    project = sendgrid_project(tmp_path, clock, server.host, asm_group_id="42", sandbox_mode="true")
    _, report = sending.send(project)
    assert report is not None and report.submitted == 29 and report.finished
    assert server.rejected == []
    assert sum(server.received.values()) == 29 and set(server.received.values()) == {1}
    body = server.accepted[0]
    assert body["asm"] == {"group_id": 42} and body["mail_settings"]["sandbox_mode"]["enable"]
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    person = body["personalizations"][0]
    assert re.match(
        r"<http://localhost:8000/unsubscribe/[^>]+>, <mailto:",
        person["headers"]["List-Unsubscribe"],
    )
    # The provider's substitution, done here, leaves no token in subject, text or HTML.
    for part in (body["subject"], *(c["value"] for c in body["content"])):
        filled = compile_template(part).fill(person["substitutions"])
        assert unfilled_tokens(filled) == []
    # The email's own unsubscribe link is the header's, with a token the web app accepts.
    html = compile_template(body["content"][1]["value"]).fill(person["substitutions"])
    url = re.match(r"<([^>]+)>", person["headers"]["List-Unsubscribe"])
    assert url is not None and f'href="{url.group(1)}"' in html
    token = url.group(1).rpartition("/")[2]
    subscriber = project.signer().verify(Purpose.MANAGE, token)["s"]
    assert str(subscriber) == person["custom_args"]["subscriber_id"]
    # The headers the outbox and SMTP messages carry: the mailto entry with its token too,
    # the issue's Message-ID, Gmail's Feedback-ID; none SendGrid refuses to take.
    assert "{token}" not in orjson.dumps(body).decode()
    assert person["headers"]["List-Unsubscribe"] == (
        f"<http://localhost:8000/unsubscribe/{token}>, "
        f"<mailto:unsubscribe@northwind.example?subject=unsubscribe%20{token}>"
    )
    issue_id = person["custom_args"]["issue_id"]
    assert re.fullmatch(
        rf"<digest\.{issue_id}\.{subscriber}\.[0-9a-f]{{12}}@northwind\.example>",
        person["headers"]["Message-ID"],
    )
    assert body["headers"]["Feedback-ID"] == "weekly-1:weekly:digest:northwind"
    named = {n.lower() for h in [body["headers"], person["headers"]] for n in h}
    assert not named & reserved_headers(schema)


@pytest.mark.parametrize(
    ("in_flight", "batch_size"), [(3, 2), (20, 1)], ids=["three", "more-than-the-pool"]
)
def test_requests_run_in_flight_up_to_the_configured_number(
    tmp_path: Path, clock: FixedClock, server: SendGridServer, in_flight: int, batch_size: int
) -> None:
    """The first requests are held until ``in_flight`` are under way together, however slowly
    the sender's threads get going: then the peak is the configured number, never more.

    Twenty is more than the engine's pool has places: each sending thread's connection is
    detached from it, so the leasing thread still gets one (held in the pool, the send waited
    for one for ever)."""
    project = sendgrid_project(tmp_path, clock, server.host, batch_size=batch_size)
    pool: Any = project.engine.pool
    assert pool.size() + pool._max_overflow < 20
    project.config = replace(
        project.config,
        file=project.config.file.model_copy(
            update={"sending": project.config.sending.model_copy(update={"in_flight": in_flight})}
        ),
    )
    server.holds[""] = together = Hold(barrier=in_flight)
    _, report = sending.send(project)
    assert report is not None and report.finished and report.submitted == 29
    assert set(server.received.values()) == {1}
    assert together.released and server.peak_active == in_flight


def test_faults_are_retried_and_nobody_gets_two(
    tmp_path: Path, clock: FixedClock, schema: Path
) -> None:
    with running(schema, fault_rate=0.3) as server:
        project = sendgrid_project(tmp_path, clock, server.host, batch_size=3)
        transport = project.sendgrid()
        transport.sleep = lambda seconds: None  # the backoff's length is not under test
        # The server's faults come from a seeded sequence that opens with a run of them; with
        # requests in flight, one request can meet seven in a row. Under test is that every
        # fault is retried and nobody gets two, not how many tries it takes.
        transport.retries = 20
        _, report = sending.send(project, transport=transport)
    assert report is not None and report.finished and report.submitted == 29
    assert sorted(server.received.values()) == [1] * 29


def test_a_timeout_makes_the_batch_ambiguous_not_duplicated(
    tmp_path: Path, clock: FixedClock, server: SendGridServer
) -> None:
    # The server takes the first request and answers it only once the sender has given up
    # waiting (its timeout, one second) and hung up: however slow the machine, never in time.
    server.holds[""] = late = Hold(count=1, until_hangup=True)
    project = sendgrid_project(tmp_path, clock, server.host, batch_size=10, timeout_seconds=1)
    _, report = sending.send(project)
    assert report is not None and report.ambiguous > 0
    assert report.submitted + report.ambiguous == 29
    with project.engine.connect() as conn:
        assert reporting.counts(conn, report.issue_id)[ledger.AMBIGUOUS] == report.ambiguous
    [unanswered] = late.held
    assert report.ambiguous >= len(unanswered.recipients) > 0
    # The batch was taken after all: retrying it would have mailed those readers twice.
    assert sorted(server.received.values()) == [1] * 29


def test_a_bad_key_stops_the_send_without_showing_the_key(
    tmp_path: Path, clock: FixedClock, server: SendGridServer
) -> None:
    project = sendgrid_project(tmp_path, clock, server.host)
    from dataclasses import replace

    wrong = replace(project.config.secrets, sendgrid_api_key="SG.wrong-secret-value")
    project.config = replace(project.config, secrets=wrong)
    with pytest.raises(TransportError) as stopped:
        sending.send(project)
    assert "API key was refused" in str(stopped.value)
    assert "SG.wrong-secret-value" not in str(stopped.value)
    assert sum(server.received.values()) == 0

    # Nothing was taken, so nothing is lost: with the key put right, everyone gets it once.
    project.config = replace(project.config, secrets=replace(wrong, sendgrid_api_key=API_KEY))
    _, report = sending.send(project)
    assert report is not None and report.finished and report.submitted == 29
    assert sorted(server.received.values()) == [1] * 29


def test_one_off_messages_validate_too(
    tmp_path: Path, clock: FixedClock, server: SendGridServer
) -> None:
    """A test send and a confirmation request go through the same API, as their own shape."""
    project = sendgrid_project(tmp_path, clock, server.host)
    _, _, subject = previews.send_test(project, "editor@example.com", segment=frozenset({"data"}))
    assert server.rejected == [] and len(server.accepted) == 1
    body = server.accepted[0]
    assert body["subject"] == subject and subject.startswith("[TEST]")
    assert body["personalizations"] == [{"to": [{"email": "editor@example.com"}]}]
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert list(server.received) == [(None, None)]  # outside the ledger: no delivery ids


def test_limits_are_measured_in_utf8_bytes_per_personalization() -> None:
    def person(name: str, subscriber: str = "1") -> dict[str, object]:
        return {
            "to": [{"email": "r@example.com"}],
            "substitutions": {"%%first_name%%": name, "%%email%%": "r@example.com"},
            "custom_args": {"issue_id": "1", "subscriber_id": subscriber},
        }

    fits = "é" * 4_990  # 9,980 bytes, with the keys and address just over 10,000
    payload = {
        "personalizations": [person("Ada"), person("ü" * 2_400), person(fits)],
    }
    assert payload_problems(payload, 1_000) == ["personalization 2: substitutions of 10016 bytes"]
    too_many_args = {"personalizations": [person("Ada", subscriber="9" * 10_000)]}
    assert payload_problems(too_many_args, 1_000) == ["personalization 0: custom_args too large"]


@given(
    people=st.lists(
        st.tuples(st.text(max_size=1200), st.text(max_size=1200), st.integers(1, 10**12)),
        min_size=1,
        max_size=5,
    ),
    token=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", max_size=300),
    digest=st.text(max_size=300),
)
def test_the_batch_wide_bound_never_passes_a_personalization_over_the_limits(
    people: list[tuple[str, str, int]], token: str, digest: str
) -> None:
    """The shortcut that spares checking each personalization only says yes when each one
    is in fact within the limits, measured as payload_problems measures them."""
    recipients = [Recipient(sid, email, name, name, token) for name, email, sid in people]
    if not personal_parts_fit(recipients, digest, 12):
        return
    for r in recipients:
        substitutions = recipient_values(r.first_name, r.email, r.token)
        assert sum(len(k.encode()) + len(v.encode()) for k, v in substitutions.items()) <= 10_000
        args = {"digest": digest, "issue_id": "12", "subscriber_id": str(r.subscriber_id)}
        assert len(orjson.dumps(args)) < 10_000


@pytest.mark.parametrize("fault", ["down", "refused", "unanswered"])
def test_a_batch_sent_in_parts_keeps_what_each_part_became(
    tmp_path: Path, clock: FixedClock, server: SendGridServer, fault: str
) -> None:
    """A batch SendGrid takes only split (here every batch: the body limit is one byte) goes
    as a request per part, one reader each. The first batch's second part fails after its
    first was taken: the taken reader is not mailed again by the resumed send, nor recorded
    failed or unknown; only the failed part's reader is."""
    project = sendgrid_project(tmp_path, clock, server.host, timeout_seconds=1)
    one_at_a_time = project.config.sending.model_copy(update={"in_flight": 1})
    project.config = replace(
        project.config, file=project.config.file.model_copy(update={"sending": one_at_a_time})
    )
    transport = project.sendgrid()
    transport.max_body_bytes = 1
    transport.sleep = lambda seconds: None
    if fault == "down":  # every try of the second request fails: the send stops
        server.faults.extend(["take"] + ["500"] * (transport.retries + 1))
        with pytest.raises(TransportError, match="HTTP 500"):
            sending.send(project, transport=transport)
    elif fault == "refused":
        server.faults.extend(["take", "400"])
    else:  # taken, and answered only once the sender has given up waiting
        server.holds[""] = Hold(first=2, count=1, until_hangup=True)
    _, report = sending.send(project, transport=transport)
    assert report is not None and report.finished
    with project.engine.connect() as conn:
        counts = reporting.counts(conn, report.issue_id)
    assert all(len(body["personalizations"]) == 1 for body in server.accepted)
    if fault == "refused":
        assert sorted(server.received.values()) == [1] * 28
        assert (counts[ledger.SUBMITTED], counts[ledger.FAILED]) == (28, 1)
    elif fault == "unanswered":
        assert sorted(server.received.values()) == [1] * 29
        assert (counts[ledger.SUBMITTED], counts[ledger.AMBIGUOUS]) == (28, 1)
    else:
        assert sorted(server.received.values()) == [1] * 29
        assert counts[ledger.SUBMITTED] == 29


FAULTS = st.sampled_from(["take", "take", "500", "400", "429", "drop"])


@settings(
    max_examples=int(os.environ.get("SPLIT_EXAMPLES", "12")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    faults=st.lists(FAULTS, max_size=40),
    body_limit=st.sampled_from([1, 1, 60_000, MAX_PAYLOAD_BYTES]),
    batch_size=st.integers(1, 29),
)
# A later part refused, and the provider down at a later part: each broke the old record.
@example(faults=["take", "400"], body_limit=1, batch_size=29)
@example(faults=["take", "take", "500", "500"], body_limit=1, batch_size=29)
def test_split_batches_under_random_faults_mail_each_reader_at_most_once(
    tmp_path_factory: pytest.TempPathFactory,
    clock: FixedClock,
    schema: Path,
    faults: list[str],
    body_limit: int,
    batch_size: int,
) -> None:
    """Batches split into parts (every batch, some, none), the server failing requests at
    random (server errors past the one retry stop the send, which is then run again), until
    the issue is sent: whoever the ledger says was submitted got the digest exactly once,
    whoever it says failed never got it, and nobody is left out."""
    tmp_path = tmp_path_factory.mktemp("split")
    with running(schema) as server:
        server.faults.extend(faults)
        project = sendgrid_project(tmp_path, clock, server.host, batch_size=batch_size)
        transport = project.sendgrid()
        transport.max_body_bytes = body_limit
        transport.retries = 1
        transport.sleep = lambda seconds: None
        report = None
        for _ in range(len(faults) + 2):  # each stop uses up at least one fault
            try:
                _, report = sending.send(project, transport=transport)
            except TransportError:
                continue
            if report is not None and report.finished:
                break
        assert report is not None and report.finished, faults
        states = {s: state for s, (state, _) in outcomes(project, report.issue_id).items()}
        issue = str(report.issue_id)
        received = {int(s): n for (i, s), n in server.received.items() if i == issue and s}
    assert set(received.values()) <= {1}
    submitted = {s for s, state in states.items() if state == ledger.SUBMITTED}
    assert set(received) == submitted
    assert len(states) == 29 and set(states.values()) <= {ledger.SUBMITTED, ledger.FAILED}
