"""The signed Event Webhook: SendGrid's public vectors, and events applied once each."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from digest import db
from digest.app import feedback
from digest.events import apply_events, issue_counts, signature_valid
from digest.stores import engagement
from subscribers.models import Status
from tests.conftest import Live


def test_sendgrid_signature_vectors(corpus: Path) -> None:
    vectors = json.loads(
        (corpus / "sendgrid" / "event_webhook" / "signed_webhook_test_vectors.json").read_text()
    )
    checked = 0
    for vector in vectors["vectors"]:
        for case in vector["cases"]:
            merged = {**vector, **case}
            timestamp = merged["timestamp"]
            now = (
                datetime.fromtimestamp(int(timestamp), tz=UTC)
                if str(timestamp).isdigit()
                else datetime(2020, 9, 14, tzinfo=UTC)
            )
            got = signature_valid(
                merged["payload"].encode(),
                merged["signature"],
                timestamp,
                merged["public_key"],
                now,
                timedelta(minutes=10),
            )
            assert got is case["expected"], (vector["source"], case["name"])
            checked += 1
    assert checked >= 6


def test_a_valid_signature_from_long_ago_is_stale(corpus: Path) -> None:
    vector = json.loads(
        (corpus / "sendgrid" / "event_webhook" / "signed_webhook_test_vectors.json").read_text()
    )["vectors"][0]
    later = datetime.fromtimestamp(int(vector["timestamp"]), tz=UTC) + timedelta(hours=1)
    assert not signature_valid(
        vector["payload"].encode(),
        vector["signature"],
        vector["timestamp"],
        vector["public_key"],
        later,
        timedelta(minutes=10),
    )


def test_every_sample_event_applies_once(live: Live, corpus: Path) -> None:
    folder = corpus / "sendgrid" / "event_webhook"
    samples = json.loads((folder / "events_all_types.json").read_text())
    # The documentation's samples share a placeholder sg_event_id: by id they are one event.
    with live.project.engine.begin() as conn:
        placeholder = apply_events(conn, samples, live.clock())
    assert sum(placeholder.applied.values()) == 1 and placeholder.duplicates == len(samples) - 1
    unique = [e | {"sg_event_id": f"{i}-{e['event']}"} for i, e in enumerate(samples)]
    live.add(samples[0]["email"], {"backend"})
    with live.project.engine.begin() as conn:
        first = apply_events(conn, unique, live.clock())
        again = apply_events(conn, unique, live.clock())
        stored = conn.execute(select(func.count()).select_from(db.events)).scalar_one()
    assert sum(first.applied.values()) == len(samples)
    assert sum(again.applied.values()) == 0 and again.duplicates == len(samples)
    assert stored == len(samples) + 1
    # bounce, then spam report, then unsubscribes: the complaint stays.
    assert live.subscriber(samples[0]["email"]).status is Status.COMPLAINED
    for path in sorted((folder / "per_event").glob("*.json")):
        events = json.loads(path.read_text())
        with live.project.engine.begin() as conn:
            apply_events(conn, events if isinstance(events, list) else [events], live.clock())


def signed(body: bytes, key: ec.EllipticCurvePrivateKey, when: datetime) -> dict[str, str]:
    timestamp = str(int(when.timestamp()))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


@pytest.fixture
def signing_key(live: Live) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = live.project.config
    settings = config.sending.sendgrid.model_copy(
        update={"webhook_public_key": base64.b64encode(public).decode()}
    )
    sending = config.sending.model_copy(update={"sendgrid": settings})
    live.project.config = replace(config, file=config.file.model_copy(update={"sending": sending}))
    return key


def test_webhook_endpoint_applies_signed_events_and_refuses_the_rest(
    live: Live, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    reader = live.add("bouncy@example.com", {"backend"})
    body = json.dumps(
        [
            {
                "email": "bouncy@example.com",
                "event": "bounce",
                "type": "bounce",
                "sg_event_id": "ev-1",
                "timestamp": int(live.clock().timestamp()),
                "issue_id": "1",
                "subscriber_id": str(reader),
            },
            {
                "email": "bouncy@example.com",
                "event": "delivered",
                "sg_event_id": "ev-2",
                "timestamp": int(live.clock().timestamp()),
                "issue_id": "1",
                "subscriber_id": str(reader),
            },
        ]
    ).encode()
    url = f"{live.base}/webhooks/sendgrid"
    forged = httpx.post(
        url,
        content=body.replace(b"bounce", b"click"),
        headers=signed(body, signing_key, live.clock()),
    )
    stale = httpx.post(
        url, content=body, headers=signed(body, signing_key, live.clock() - timedelta(hours=2))
    )
    assert forged.status_code == 403 and stale.status_code == 403
    assert live.subscriber("bouncy@example.com").status is Status.ACTIVE
    good = httpx.post(url, content=body, headers=signed(body, signing_key, live.clock()))
    assert (good.status_code, good.content) == (200, b'{"accepted":2,"ignored":0}')
    # Staged: the server's drain thread applies it soon; a drain here applies it now (or
    # finds it applied), whichever comes first.
    feedback.drain(live.project)
    assert live.subscriber("bouncy@example.com").status is Status.BOUNCED
    replay = httpx.post(url, content=body, headers=signed(body, signing_key, live.clock()))
    assert replay.content == b'{"accepted":2,"ignored":0}'
    feedback.drain(live.project)
    with live.project.engine.connect() as conn:
        assert issue_counts(conn, 1) == {"bounce": 1, "delivered": 1}
        assert engagement.raw_count(conn) == 2
    assert feedback.staged_events(live.project) == 0
