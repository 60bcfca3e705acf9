"""One person on the list, on SQLite and PostgreSQL: finding them a page at a time, what we
hold on them, their topics, suppression, their data, and erasure: after it, no column of any
table holds their address or name, the outbox holds no message to them, and every way in
(import, add, the sign-up form) refuses the address while the rest of the list is untouched."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, String, Text, select

from digest import db
from digest.app import feedback, gathering, people, sending, subscribers
from digest.app.readers import Readers
from digest.app.wiring import Project
from digest.config import Config
from digest.errors import DigestError
from digest.events import apply_events
from digest.stores import engagement
from subscribers.models import Status
from subscribers.store import SubscriberStore
from subscribers.tokens import InvalidToken, Purpose
from tests.conftest import FixedClock

ADA = "Ada.Lovelace@Example.com"
ADA_NAME = "Ada Qwzlovelace"  # a name found nowhere else in the example site


@pytest.fixture
def project(example_config: Config, clock: FixedClock, engine: Engine) -> Project:
    project = Project.open(example_config, clock=clock, engine=engine)
    gathering.gather_sources(project)
    with engine.begin() as conn:
        store = SubscriberStore(conn)
        store.add(ADA, ADA_NAME, frozenset({"backend", "data"}), clock(), "web")
        for i in range(7):
            store.add(f"reader{i}@example.com", f"Reader {i}", frozenset({"backend"}), clock())
    return project


def ada_id(project: Project) -> int:
    return people.id_of(project, ADA.lower())


def held_anywhere(project: Project, *needles: str) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text cell of every table holding one of ``needles``
    (any case): the whole schema, so that a table added later is searched too."""
    found = []
    wanted = [n.lower() for n in needles]
    with project.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
            if not columns:
                continue
            for row in conn.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    if isinstance(value, str) and any(n in value.lower() for n in wanted):
                        found.append((table.name, column.name, value))
    return found


def test_find_pages_through_addresses_and_names(project: Project) -> None:
    first = people.find(project, "reader", limit=3)
    assert [p.email for p in first.people] == [f"reader{i}@example.com" for i in range(3)]
    rest = people.find(project, "READER", after=first.next_after or 0, limit=5)
    assert [p.email for p in rest.people] == [f"reader{i}@example.com" for i in range(3, 7)]
    assert rest.next_after is None
    assert [p.email for p in people.find(project, "ada.lovelace@").people] == [ADA]
    assert [p.email for p in people.find(project, "qwzlove").people] == [ADA]
    assert [
        p.email for p in people.find(project, "@example.com", topic="Data Engineering").people
    ] == [ADA]
    assert people.find(project, "reader%").people == []  # LIKE's wildcards are text here
    with project.engine.begin() as conn:
        SubscriberStore(conn).add(
            "oe@example.com", "ÖLAF Ünal", frozenset({"data"}), project.clock()
        )
    assert [p.email for p in people.find(project, "ölaf ü").people] == ["oe@example.com"]
    assert people.find(project, "", status=Status.PENDING).people == []
    with pytest.raises(DigestError, match="unknown topic"):
        people.find(project, "", topic="gardening")


def test_topics_and_suppression(project: Project) -> None:
    sid = ada_id(project)
    assert people.change_topics(project, sid, ["frontend; AI & Machine Learning"]).topics == {
        "frontend",
        "ai-ml",
    }
    with pytest.raises(DigestError, match="at least one topic"):
        people.change_topics(project, sid, [])
    assert people.suppress(project, sid, Status.COMPLAINED)[1] is True
    changed, did = people.suppress(project, sid, Status.UNSUBSCRIBED)
    assert not did and changed.status is Status.COMPLAINED  # a complaint is never softened
    with pytest.raises(DigestError, match="suppressed as one of"):
        people.suppress(project, sid, Status.ACTIVE)


def test_erasure_leaves_no_address_or_name_anywhere_and_keeps_the_person_suppressed(
    project: Project, tmp_path: Path
) -> None:
    sid = ada_id(project)
    sent: list[EmailMessage] = []
    readers = Readers(project, sent.append)
    readers.send_link(ADA)  # her preferences link, kept in `sent`
    project.mailer()(sent[0])  # and written by the project's transport, the outbox
    planned, report = sending.send(project, "weekly", force=True)
    assert report is not None and report.submitted == 8
    assert planned is not None and planned.issue.id is not None
    click = {"sg_event_id": "e3", "issue_id": planned.issue.id, "url": "https://example.com/"}
    with project.engine.begin() as conn:
        apply_events(
            conn,
            [
                {"event": "open", "sg_event_id": "e1", "email": ADA, "subscriber_id": sid},
                {"event": "delivered", "sg_event_id": "e2", "email": ADA.upper()},
                {"event": "click", "email": ADA, **click},  # remembered as the post's reader
            ],
            project.clock(),
            link_of=lambda _issue, _url: 1,
        )
    before = people.personal_data(project, sid)
    assert before["subscriber"]["email"] == ADA and before["subscriber"]["name"] == ADA_NAME
    assert [d["state"] for d in before["deliveries"]] == ["submitted"]
    assert sorted(e["event"] for e in before["events"]) == ["click", "delivered", "open"]
    assert len(before["outbox_files"]) == 2
    json.dumps(before)  # everything in it is JSON
    assert held_anywhere(project, ADA, ADA_NAME)

    others = people.personal_data(project, people.id_of(project, "reader3@example.com"))
    done = people.erase(project, sid)
    assert (done.deliveries, done.events, done.files) == (1, 3, 2)
    assert held_anywhere(project, ADA, ADA_NAME, "qwzlovelace") == []
    outbox = project.config.outbox_dir
    assert not any(ADA.lower().encode() in p.read_bytes().lower() for p in outbox.rglob("*.eml"))
    assert people.personal_data(project, people.id_of(project, "reader3@example.com")) == others

    # The person stays suppressed, and the rest of the list does not change.
    with pytest.raises(DigestError, match="erased on request"):
        people.id_of(project, ADA)
    assert people.find(project, ADA.upper()).erased
    with pytest.raises(DigestError, match="erased on request"):
        subscribers.add(project, ADA, "", "backend")
    csv = tmp_path / "list.csv"
    csv.write_text(f"email,topics\n{ADA.upper()},backend\nnew@example.com,data\n", "utf-8")
    summary = subscribers.import_file(
        project, subscribers.read_file(project, csv), str(csv), dry_run=False, reactivate=True
    )
    assert summary.erased == ("ADA.LOVELACE@example.com",) and summary.added == 1
    readers.subscribe(ADA.lower(), "Ada", ["backend"])
    assert len(sent) == 1  # no confirmation request
    assert held_anywhere(project, ADA, ADA_NAME) == []
    with project.engine.connect() as conn:
        per_status, _ = SubscriberStore(conn).stats()
    assert per_status == {"active": 8, "erased": 1}
    with pytest.raises(DigestError, match="erased on request"):
        people.erase(project, sid)
    # Old links in her mailbox lead nowhere.
    with pytest.raises(InvalidToken, match="unknown"):
        readers.subscriber_for(Purpose.MANAGE, readers.manage_token(sid))


def test_after_an_erasure_a_late_event_and_an_export_hold_no_trace(
    project: Project, tmp_path: Path
) -> None:
    sid = ada_id(project)
    people.erase(project, sid)
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = project.config
    settings = config.sending.sendgrid.model_copy(
        update={"webhook_public_key": base64.b64encode(public).decode()}
    )
    sending_config = config.sending.model_copy(update={"sendgrid": settings})
    project.config = replace(
        config, file=config.file.model_copy(update={"sending": sending_config})
    )
    body = json.dumps(
        [
            {"email": ADA.upper(), "event": "delivered", "sg_event_id": "late-1"},
            {"email": "reader1@example.com", "event": "open", "sg_event_id": "other-1"},
        ]
    ).encode()
    stamp = str(int(project.clock().timestamp()))
    signature = base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256())))
    staged = feedback.stage_webhook(project, body, signature.decode(), stamp)
    assert staged == feedback.Staged(accepted=2, ignored=0)
    assert sum(feedback.drain(project).report.applied.values()) == 2
    assert held_anywhere(project, ADA, ADA_NAME) == []
    assert held_anywhere(project, "reader1@example.com")  # others' events keep their address

    exported = tmp_path / "all.csv"
    assert subscribers.export(project, exported) == 7  # the erased row is no subscriber
    parsed = subscribers.read_file(project, exported)
    assert parsed.problems == () and len(parsed.rows) == 7


def test_an_event_staged_before_the_erasure_is_forgotten_with_the_rest(project: Project) -> None:
    """The webhook answered for a batch holding the reader's address, not drained yet: the
    erasure drains the inbox first, so the event is stored, then blanked with the others."""
    sid = ada_id(project)
    event = {"email": ADA, "event": "open", "sg_event_id": "staged-1", "issue_id": "1"}
    feedback.stage_events(project, [event])
    people.erase(project, sid)
    assert feedback.staged_events(project) == 0
    assert held_anywhere(project, ADA, ADA_NAME) == []
    with project.reading() as conn:
        assert engagement.raw_count(conn) == 1
