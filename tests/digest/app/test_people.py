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
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import Engine, String, Text, delete, select

from digest import db
from digest.app import feedback, gathering, people, sending, subscribers
from digest.app.readers import Readers
from digest.app.wiring import Project
from digest.config import Config
from digest.errors import DigestError
from digest.events import apply_events
from digest.stores import engagement
from subscribers.erasure import derived_key
from subscribers.models import Status
from subscribers.store import SubscriberStore
from subscribers.tables import erasure_keys
from subscribers.tokens import InvalidToken, Purpose
from tests.conftest import FixedClock
from tests.digest.app.test_welcome import clicked_at_once, confirm_token, shared_mailbag

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
    # Anyone may type her address into the sign-up form: she is asked, as anyone would be
    # (see the next test), and nothing is stored.
    readers.subscribe(ADA.lower(), "Ada", ["backend"])
    assert len(sent) == 2 and sent[1]["Subject"].startswith("Confirm your subscription")
    assert held_anywhere(project, ADA, ADA_NAME) == []
    with project.engine.connect() as conn:
        per_status, _ = SubscriberStore(conn).stats()
    assert per_status == {"active": 8, "erased": 1}
    with pytest.raises(DigestError, match="erased on request"):
        people.erase(project, sid)
    # Old links in her mailbox lead nowhere.
    with pytest.raises(InvalidToken, match="unknown"):
        readers.subscriber_for(Purpose.MANAGE, readers.manage_token(sid))


def test_an_erased_person_comes_back_by_their_own_confirmation_as_a_new_reader(
    project: Project, tmp_path: Path
) -> None:
    erased = ada_id(project)
    planned, _ = sending.send(project, "weekly", force=True)
    assert planned is not None
    people.erase(project, erased)
    sent: list[EmailMessage] = []
    readers = Readers(project, sent.append)
    readers.subscribe(ADA, "Ada Again", ["backend", "data"], zone="Europe/London")
    [request] = sent
    raw = bytes(request)
    assert b"\nTo: Ada Again <Ada.Lovelace@Example.com>\n" in raw
    assert b"erased from our list at its owner's request" in raw
    token = confirm_token(raw)
    # The payload of a link is signed, not secret: the address and name travel sealed.
    _, carried = URLSafeTimedSerializer("any key").loads_unsafe(token)
    shown = json.dumps(carried).lower()
    assert "lovelace" not in shown and "ada again" not in shown and carried["s"] == erased
    assert held_anywhere(project, ADA, "Ada Again") == []
    assert readers.confirming(token) == (ADA, ["backend", "data"])
    with pytest.raises(DigestError, match="erased on request"):  # not on anyone else's say
        subscribers.add(project, ADA, "", "backend")

    preferences = readers.confirm(token)
    again = readers.confirm(token)  # the same link, clicked twice
    back = readers.subscriber_for(Purpose.MANAGE, preferences)[0]
    assert back == readers.subscriber_for(Purpose.MANAGE, again)[0]
    assert (back.email, back.name, back.status) == (ADA, "Ada Again", Status.ACTIVE)
    assert back.topics == {"backend", "data"} and back.time_zone == "Europe/London"
    assert back.id != erased
    assert [m["Subject"] for m in sent[1:]] == ["Welcome to The Northwind Weekly"]
    # Her old row stays erased with its history, which is not hers again.
    new, old = people.person(project, back.id), people.person(project, erased)
    assert new is not None and new.sent == [] and new.source == "web"
    assert old is not None and old.subscriber.status is Status.ERASED and len(old.sent) == 1
    assert held_anywhere(project, ADA) == [
        ("subscribers", "email", ADA),
        ("subscribers", "email_key", ADA.lower()),
    ]
    # Her address is now like any other: an import finds it known, not erased.
    csv = tmp_path / "list.csv"
    csv.write_text(f"email,topics\n{ADA},backend\n", "utf-8")
    summary = subscribers.import_file(
        project, subscribers.read_file(project, csv), str(csv), dry_run=False
    )
    assert summary.erased == () and summary.added == 0

    # Erased again: the link she used no longer brings her back; a new sign-up asks again.
    people.erase(project, back.id)
    for check in (readers.confirming, readers.confirm):
        with pytest.raises(InvalidToken, match="unknown"):
            check(token)
    assert people.person(project, back.id) is not None
    readers.subscribe(ADA, "", ["data"])
    assert readers.confirming(confirm_token(bytes(sent[-1]))) == (ADA, ["data"])
    with project.engine.connect() as conn:
        per_status, _ = SubscriberStore(conn).stats()
    assert per_status == {"active": 7, "erased": 2}


def rotated(project: Project, secret_key: str, previous: str | None = None) -> Project:
    """The project opened again (a restart) with other secret keys in its environment."""
    secrets = replace(project.config.secrets, secret_key=secret_key, previous_secret_key=previous)
    config = replace(project.config, secrets=secrets)
    return Project.open(config, clock=project.clock, engine=project.engine)


def refuses_ada(project: Project) -> None:
    with pytest.raises(DigestError, match="erased on request"):
        subscribers.add(project, ADA, "", "backend")
    assert people.find(project, ADA).erased


def test_erasures_outlive_a_rotation_of_the_secret_key(project: Project) -> None:
    first = project.config.secrets.secret_key
    assert first is not None
    with project.engine.begin() as conn:  # a database from before the keys were kept
        conn.execute(delete(erasure_keys))
    people.erase(project, ada_id(project))
    # The keys kept are wrapped: the database holds no key its hashes are made with.
    [(wrapped,)] = rotated(project, first).engine.connect().execute(select(erasure_keys.c.wrapped))
    assert derived_key(first).hex() not in wrapped and first not in wrapped
    refuses_ada(rotated(project, first))
    refuses_ada(rotated(project, "the second key, for a while", previous=first))
    refuses_ada(rotated(project, "the second key, for a while"))  # the previous key gone

    # A new key without the one before: the erased are not forgotten, the error says what to do.
    jumped = rotated(project, "a third key, set without the second")
    with pytest.raises(DigestError, match="DIGEST_PREVIOUS_SECRET_KEY") as refused:
        subscribers.add(jumped, "someone.new@example.com", "", "backend")
    assert "set DIGEST_PREVIOUS_SECRET_KEY to that key" in str(refused.value)
    assert not people.find(jumped, ADA).erased  # a search answers, knowing no better
    refuses_ada(rotated(project, "a third key", previous="the second key, for a while"))
    refuses_ada(rotated(project, "a third key"))
    assert subscribers.add(rotated(project, "a third key"), "new@example.com", "", "data")


def test_two_clicks_at_once_bring_an_erased_person_back_once(project: Project) -> None:
    """A double click, or a link scanner and the reader: one new reader, one welcome, on
    SQLite and PostgreSQL, whatever the order the threads run in."""
    people.erase(project, ada_id(project))
    sent, mailer = shared_mailbag()
    readers = Readers(project, mailer)
    readers.subscribe(ADA, "", ["backend"])
    answers, errors = clicked_at_once(readers, confirm_token(bytes(sent[0])))
    assert errors == []
    assert len({readers.subscriber_for(Purpose.MANAGE, a)[0].id for a in answers}) == 1
    assert [m["Subject"] for m in sent[1:]] == ["Welcome to The Northwind Weekly"]
    with project.engine.connect() as conn:
        per_status, _ = SubscriberStore(conn).stats()
    assert per_status == {"active": 8, "erased": 1}


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
