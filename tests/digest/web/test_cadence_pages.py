"""Cadences and time zones on the readers' pages and the editor dashboard, through the real
app over HTTP: the sign-up form's choices (kept until the link is opened), the preference
centre, hostile values refused with the form again, and editors' counts per cadence."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from digest.config import Config
from subscribers import tables
from subscribers.models import Status
from subscribers.tokens import Purpose
from tests.cadence_site import cadence_config
from tests.conftest import Live
from tests.digest.web.conftest import EditorSite, csrf_of


@pytest.fixture
def example_config(tmp_path: Path, environ: dict[str, str]) -> Config:
    """The ``live`` server runs the site with three cadences and local delivery."""
    return cadence_config(tmp_path / "site", environ)


def cadences_of(live: Live, address: str) -> dict[str, tuple[str, int | None]]:
    rc = tables.reader_cadences.c
    found = live.subscriber(address)
    with live.project.engine.connect() as conn:
        return {
            r.digest: (r.cadence, r.watermark)
            for r in conn.execute(
                select(rc.digest, rc.cadence, rc.watermark).where(rc.subscriber_id == found.id)
            )
        }


def confirm_link(live: Live, address: str) -> str:
    live.settle()
    (mail,) = [m for m in live.outbox.glob("*.eml") if m.name.startswith(address)]
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",))
    assert text is not None
    link = re.search(r"http://localhost:8000(/confirm/[\w.-]+)", text.get_content())
    assert link is not None
    return link.group(1)


def test_the_form_offers_cadences_and_proposes_the_browsers_zone(live: Live) -> None:
    with live.client() as client:
        form = client.get("/subscribe")
    assert form.status_code == 200
    radios = re.findall(
        r'<input type="radio" name="cadence-weekly" value="(\w+)"( checked)?', form.text
    )
    assert radios == [("daily", ""), ("weekly", " checked"), ("monthly", "")]
    assert 'id="time_zone" name="time_zone"' in form.text and "data-propose" in form.text
    assert 'placeholder="Europe/Berlin"' in form.text
    script = re.search(r"<script>(.*?)</script>", form.text, re.S)
    assert script is not None and "resolvedOptions().timeZone" in script.group(1)
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    policy = form.headers["Content-Security-Policy"]
    assert f"script-src 'sha256-{digest}'" in policy and "unsafe-inline'; img" in policy


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"time_zone": "../../etc/passwd"}, "is not a time zone we know"),
        ({"time_zone": "Europe/Berlin\r\nX: y"}, "is not a time zone we know"),
        ({"time_zone": "Z" * 100_000}, "is not a time zone we know"),
        ({"cadence-weekly": "hourly"}, "has no cadence"),
        ({"cadence-weekly": "daily\x00<b>"}, "has no cadence"),
    ],
)
def test_a_bad_choice_shows_the_form_again_with_nothing_lost(
    live: Live, fields: dict[str, str], shown: str
) -> None:
    with live.client() as client:
        form = client.get("/subscribe")
        data = {
            "csrf": csrf_of(form),
            "email": "kept@example.com",
            "name": "Kept",
            "topics": ["data"],
            "cadence-weekly": "monthly",
            "time_zone": "Asia/Tokyo",
        } | fields
        again = client.post("/subscribe", data=data)
    assert again.status_code == 400
    assert shown in again.text
    assert 'value="kept@example.com"' in again.text and 'value="Kept"' in again.text
    assert 'value="data" checked' in again.text
    if "cadence-weekly" not in fields:
        assert 'value="monthly" checked' in again.text
    assert "<b>" not in again.text and "\r\nX: y" not in again.text
    assert len(again.text) < 40_000  # a huge value is not echoed whole
    live.settle()
    assert live.subscriber("kept@example.com") is None
    assert not list(live.outbox.glob("*.eml"))


def test_choices_wait_for_the_confirmation_and_then_apply(live: Live) -> None:
    with live.client() as client:
        form = client.get("/subscribe")
        posted = client.post(
            "/subscribe",
            data={
                "csrf": csrf_of(form),
                "email": "new@example.com",
                "topics": ["backend"],
                "cadence-weekly": "daily",
                "time_zone": "asia/kathmandu",
            },
        )
        assert posted.status_code == 303
        link = confirm_link(live, "new@example.com")
        pending = live.subscriber("new@example.com")
        assert pending.status is Status.PENDING and pending.time_zone is None
        assert cadences_of(live, "new@example.com") == {}
        page = client.get(link)
        confirmed = client.post(link, data={"csrf": csrf_of(page)})
        assert confirmed.status_code == 303
        preferences = client.get(confirmed.headers["location"])
    reader = live.subscriber("new@example.com")
    assert reader.status is Status.ACTIVE and reader.time_zone == "Asia/Kathmandu"
    assert cadences_of(live, "new@example.com") == {"weekly": ("daily", 0)}
    assert 'value="daily" checked' in preferences.text
    assert 'value="Asia/Kathmandu"' in preferences.text


def test_without_a_choice_a_reader_gets_the_default_and_no_row(live: Live) -> None:
    with live.client() as client:
        form = client.get("/subscribe")
        client.post(
            "/subscribe",
            data={"csrf": csrf_of(form), "email": "plain@example.com", "topics": ["backend"]},
        )
        link = confirm_link(live, "plain@example.com")
        client.post(link, data={"csrf": csrf_of(client.get(link))})
    assert live.subscriber("plain@example.com").status is Status.ACTIVE
    assert live.subscriber("plain@example.com").time_zone is None
    assert cadences_of(live, "plain@example.com") == {}


def test_the_preference_centre_changes_cadence_and_zone(live: Live) -> None:
    reader = live.add("pref@example.com", {"backend"})
    token = live.project.signer().sign(Purpose.MANAGE, reader)
    with live.client() as client:
        page = client.get(f"/preferences/{token}")
        assert 'value="weekly" checked' in page.text and 'value=""' in page.text
        field = csrf_of(page)
        saved = client.post(
            f"/preferences/{token}",
            data={
                "csrf": field,
                "action": "save",
                "topics": ["backend", "data"],
                "cadence-weekly": "monthly",
                "time_zone": "America/St_Johns",
            },
        )
        assert saved.status_code == 303
        shown = client.get(saved.headers["location"])
        assert 'value="monthly" checked' in shown.text and 'value="America/St_Johns"' in shown.text
        refused = client.post(
            f"/preferences/{token}",
            data={
                "csrf": field,
                "action": "save",
                "topics": ["data"],
                "cadence-weekly": "daily",
                "time_zone": "Europe/Berlin\r\nX:",
            },
        )
        assert refused.status_code == 400 and "is not a time zone we know" in refused.text
        # What was typed is shown again, nothing of it stored.
        assert 'value="daily" checked' in refused.text and 'value="Europe/Berlin' in refused.text
        cleared = client.post(
            f"/preferences/{token}",
            data={"csrf": field, "action": "save", "topics": ["data"], "time_zone": ""},
        )
        assert cleared.status_code == 303
    found = live.subscriber("pref@example.com")
    assert found.topics == {"data"} and found.time_zone is None
    assert cadences_of(live, "pref@example.com") == {"weekly": ("monthly", 0)}


def test_the_editor_dashboard_counts_readers_per_cadence(site: EditorSite) -> None:
    live = site.live
    with live.client() as client:
        site.login(client)
        reader = live.subscriber("reader0@example.com")
        token = live.project.signer().sign(Purpose.MANAGE, reader.id)
        page = client.get(f"/preferences/{token}")
        client.post(
            f"/preferences/{token}",
            data={
                "csrf": csrf_of(page),
                "action": "save",
                "topics": ["backend"],
                "cadence-weekly": "daily",
            },
        )
        dashboard = client.get("/editor/")
    assert dashboard.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dashboard.text))
    assert "Readers daily 1 weekly 4 (default) monthly 0" in text


def test_a_client_refusing_scripts_still_gets_an_empty_zone_field(live: Live) -> None:
    """Without JavaScript the field stays empty: the reader gets the digest's zone."""
    with httpx.Client(base_url=live.base) as client:
        form = client.get("/subscribe")
    assert re.search(r'id="time_zone"[^>]*value=""', form.text)
