"""The editor app's subscriber pages over real HTTP (uvicorn on loopback): editors only, CSRF
on every change, search and pages, topics, suppression, the data download and erasure, and a
hostile name shown as text."""

from __future__ import annotations

import json
import re

from digest.app import people
from subscribers.models import Status
from subscribers.store import SubscriberStore
from tests.digest.web.conftest import EditorSite, csrf_of, logged_in

HOSTILE = '<script>alert("x")</script> Ösel & Co'


def add_hostile(site: EditorSite) -> int:
    with site.live.project.engine.begin() as conn:
        return (
            SubscriberStore(conn)
            .add("mallory@example.com", HOSTILE, frozenset({"data"}), site.live.clock())
            .id
        )


def test_the_pages_need_a_session_and_every_change_its_csrf_field(site: EditorSite) -> None:
    sid = add_hostile(site)
    with site.live.client() as anonymous:
        for path in (
            "/editor/subscribers",
            f"/editor/subscribers/{sid}",
            f"/editor/subscribers/{sid}/data.json",
        ):
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith(
                "/editor/login?next="
            )
        assert (
            anonymous.post(f"/editor/subscribers/{sid}/erase", data={"confirm": "x"}).status_code
            == 303
        )
    with logged_in(site) as client:
        for action, data in (
            ("topics", {"topic": "backend"}),
            ("suppress", {"as": "complained"}),
            ("erase", {"confirm": "mallory@example.com"}),
        ):
            answer = client.post(f"/editor/subscribers/{sid}/{action}", data=data)
            assert answer.status_code == 403, action
    assert site.live.subscriber("mallory@example.com").status is Status.ACTIVE


def test_search_show_topics_suppress_download_and_erase(site: EditorSite) -> None:
    sid = add_hostile(site)
    with logged_in(site) as client:
        page = client.get("/editor/subscribers", params={"q": "reader"})
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert re.findall(r">(reader\d@example\.com)</a>", page.text) == [
            f"reader{i}@example.com" for i in range(5)
        ]
        assert 'href="/editor/subscribers">Subscribers</a>' in page.text  # the nav link
        paged = client.get("/editor/subscribers", params={"q": "ösel", "status": "active"})
        assert f'href="/editor/subscribers/{sid}"' in paged.text
        assert "<script>alert" not in paged.text and "&lt;script&gt;alert" in paged.text

        shown = client.get(f"/editor/subscribers/{sid}")
        assert shown.status_code == 200 and "&lt;script&gt;" in shown.text
        csrf = csrf_of(shown)
        saved = client.post(
            f"/editor/subscribers/{sid}/topics",
            data={"csrf": csrf, "topic": ["backend", "frontend"]},
        )
        assert saved.status_code == 303 and saved.headers["location"].endswith("?done=topics")
        assert site.live.subscriber("mallory@example.com").topics == {"backend", "frontend"}
        refused = client.post(f"/editor/subscribers/{sid}/topics", data={"csrf": csrf})
        assert refused.status_code == 409 and "at least one topic" in refused.text

        client.post(f"/editor/subscribers/{sid}/suppress", data={"csrf": csrf, "as": "bounced"})
        assert site.live.subscriber("mallory@example.com").status is Status.BOUNCED
        softer = client.post(
            f"/editor/subscribers/{sid}/suppress", data={"csrf": csrf, "as": "unsubscribed"}
        )
        assert softer.headers["location"].endswith("?done=unchanged")
        assert site.live.subscriber("mallory@example.com").status is Status.BOUNCED

        data = client.get(f"/editor/subscribers/{sid}/data.json")
        assert data.headers["content-type"] == "application/json"
        assert (
            data.headers["content-disposition"] == f'attachment; filename="subscriber-{sid}.json"'
        )
        held = json.loads(data.content)
        assert held == people.personal_data(site.live.project, sid)
        assert held["subscriber"]["name"] == HOSTILE

        wrong = client.post(
            f"/editor/subscribers/{sid}/erase", data={"csrf": csrf, "confirm": "mallory"}
        )
        assert wrong.status_code == 409 and "Type the address" in wrong.text
        assert site.live.subscriber("mallory@example.com") is not None
        erased = client.post(
            f"/editor/subscribers/{sid}/erase",
            data={"csrf": csrf, "confirm": " Mallory@Example.com "},
        )
        assert (
            erased.status_code == 303
            and erased.headers["location"] == "/editor/subscribers?done=erased"
        )
        assert site.live.subscriber("mallory@example.com") is None
        assert client.get(f"/editor/subscribers/{sid}").status_code == 404
        assert client.get(f"/editor/subscribers/{sid}/data.json").status_code == 404
        gone = client.get("/editor/subscribers", params={"q": "mallory@example.com"})
        assert "was erased on request" in gone.text
        assert client.get("/editor/subscribers/999999").status_code == 404
        odd = client.get(
            "/editor/subscribers", params={"after": "-1", "status": "nope", "topic": "x"}
        )
        assert odd.status_code == 200
