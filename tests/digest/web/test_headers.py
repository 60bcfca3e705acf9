"""Every response carries the security headers: pages, redirects, the archive, images, the
webhook's answers, the router's own 404 and 405, and a failure's 500."""

from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.app import sending
from subscribers.tokens import Purpose
from tests.digest.web.conftest import EditorSite, logged_in

EXPECTED = {
    "x-content-type-options": {"nosniff"},
    "referrer-policy": {"no-referrer"},
    "x-frame-options": {"DENY", "SAMEORIGIN"},
}


def assert_guarded(answer: httpx.Response, what: str) -> None:
    for name, allowed in EXPECTED.items():
        values = answer.headers.get_list(name)
        assert len(values) == 1 and values[0] in allowed, (what, name, values)
    [policy] = answer.headers.get_list("content-security-policy")
    assert "default-src 'none'" in policy, what
    assert "frame-ancestors 'none'" in policy or "frame-ancestors 'self'" in policy, what


async def boom(request: Request) -> Response:
    raise RuntimeError("an unexpected failure")


def test_every_kind_of_answer_carries_the_headers(site: EditorSite) -> None:
    live = site.live
    live.app.router.routes.append(Route("/boom", boom))
    _, report = sending.send(live.project)  # issue 1 goes out: its archive page exists
    assert report is not None
    token = live.project.signer().sign(Purpose.MANAGE, live.add("r@example.com", {"backend"}))
    with live.client() as client:
        answers = {
            "page": client.get("/subscribe"),
            "redirect": client.get("/"),
            "csrf refusal": client.post("/subscribe", data={"email": "a@example.com"}),
            "unknown path": client.get("/no/such/page"),
            "wrong method": client.put("/subscribe"),
            "archive": client.get("/archive/weekly/1/"),
            "no such issue": client.get("/archive/weekly/99/"),
            "webhook off": client.post("/webhooks/sendgrid", content=b"[]"),
            "one-click": client.post(
                f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
            ),
            "bad token": client.get("/preferences/not-a-token"),
            "editor login": client.get("/editor/login"),
            "image, logged out": client.get("/editor/files/images/logo.png"),
            "failure": client.get("/boom"),
        }
    with logged_in(site) as editor:
        answers["image"] = editor.get("/editor/files/images/logo.png")
        answers["dashboard"] = editor.get("/editor/")
        answers["preview"] = editor.get("/editor/issues/1/preview")
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {
        "page": 200,
        "redirect": 303,
        "csrf refusal": 403,
        "unknown path": 404,
        "wrong method": 405,
        "archive": 200,
        "no such issue": 404,
        "webhook off": 404,
        "one-click": 200,
        "bad token": 400,
        "editor login": 200,
        "image, logged out": 303,
        "failure": 500,
        "image": 200,
        "dashboard": 200,
        "preview": 200,
    }
    for what, answer in answers.items():
        assert_guarded(answer, what)
    assert "an unexpected failure" not in answers["failure"].text  # no traceback leaks
    # An endpoint's own values are kept, not doubled: the preview may be framed by its page.
    assert answers["preview"].headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-src 'self'" in answers["dashboard"].headers["content-security-policy"]
