"""The editor dashboard shows a local-delivery slot's waves: instant, offsets, zones, readers,
and which are done."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import update

from digest.app.scheduled import run_slot
from subscribers import tables as subscriber_tables
from tests.digest.web.conftest import EditorSite, logged_in


def test_the_dashboard_shows_the_waves_of_the_slot_being_sent(site: EditorSite) -> None:
    project = site.live.project
    digest = project.config.digests[0].model_copy(
        update={"local_delivery": True, "schedule": "0 8 * * mon"}
    )
    project.config = replace(
        project.config, file=project.config.file.model_copy(update={"digests": [digest]})
    )
    s = subscriber_tables.subscribers.c
    with project.engine.begin() as conn:
        for email, zone in (
            ("reader0@example.com", "Asia/Kathmandu"),
            ("reader1@example.com", "Pacific/Kiritimati"),
        ):
            conn.execute(
                update(subscriber_tables.subscribers).where(s.email == email).values(time_zone=zone)
            )
    site.live.clock.now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    with logged_in(site) as client:
        page = html.unescape(client.get("/editor/").text)
        assert "Mon 2026-11-23 08:00 in each reader's time zone" in page
        assert "Mondays at 08:00, each reader's time zone" in page
        assert "Waves of Mon 2026-11-23 08:00" in page
        for shown in ("Sun 18:00", "+14:00", "+05:45", "Asia/Kathmandu", "Europe/Berlin"):
            assert shown in page, shown
        assert ">done<" not in page

        slot = datetime(2026, 11, 22, 18, tzinfo=UTC)  # Monday 08:00 at +14:00
        site.live.clock.now = slot
        ran = run_slot(project, "weekly", slot)
        assert ran.kind == "ran" and ran.submitted == 1 and ran.next_wave is not None
        page = client.get("/editor/").text
        assert page.count(">done<") == 1
