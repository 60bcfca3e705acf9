"""Message-IDs across databases: the same issue number sent from a reset database is another
issue, and its emails must not repeat the first one's ids (receivers dedupe on them)."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

from digest.app import feedback, sending
from digest.app.wiring import Project
from digest.stores import issues
from tests.conftest import FixedClock
from tests.digest.send.test_send import project_with


def sent(project: Project) -> dict[str, str]:
    """Reader → Message-ID, read back from the outbox files."""
    found = {}
    for path in sorted(project.config.outbox_dir.rglob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.strict)
        found[str(message["To"].addresses[0].addr_spec)] = str(message["Message-ID"])
    return found


def test_a_reset_database_sends_other_message_ids(tmp_path: Path, clock: FixedClock) -> None:
    """Two databases with the same content, the same clock, the same issue 1 to the same
    readers with the same subscriber ids: only the issue's random key tells them apart."""
    first = project_with(tmp_path / "first", clock)
    planned, _ = sending.send(first)
    again = project_with(tmp_path / "again", clock)
    planned_again, _ = sending.send(again)
    assert planned is not None and planned_again is not None
    assert planned.issue.number == planned_again.issue.number == 1
    ids, ids_again = sent(first), sent(again)
    assert len(ids) == 29 and ids.keys() == ids_again.keys()
    assert not set(ids.values()) & set(ids_again.values())
    with first.reading() as conn:
        key = issues.issue_row(conn, planned.issue.id or 0).message_key
    assert key is not None and re.fullmatch(r"[0-9a-f]{12}", key)
    for address, value in ids.items():
        same_reader = ids_again[address]
        # Issue and subscriber ids match; the key differs.
        assert value.replace(key, "") == re.sub(r"\.[0-9a-f]{12}@", ".@", same_reader)
        assert re.fullmatch(rf"<digest\.\d+\.\d+\.{key}@northwind\.example>", value)
    assert len(set(ids.values())) == len(ids)


def test_a_staged_unsubscribe_keeps_its_reader_out_of_the_next_send(
    tmp_path: Path, clock: FixedClock
) -> None:
    """The webhook answers a batch once it is staged; the send drains the inbox before it
    reads its recipients, so an unsubscribe or a bounce answered for is never sent to."""
    project = project_with(tmp_path / "site", clock)
    gone = "amelia.hartley@example.com"  # follows backend: one of the issue's 29
    event = {"event": "unsubscribe", "email": gone, "sg_event_id": "unsub-1"}
    assert feedback.stage_events(project, [event]) == feedback.Staged(accepted=1, ignored=0)
    sending.send(project)
    addresses = sent(project).keys()
    assert len(addresses) == 28 and gone not in addresses
    assert feedback.staged_events(project) == 0
