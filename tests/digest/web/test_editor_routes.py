"""The editor app over real HTTP: logins, sessions, CSRF, rate limits, edits and decisions."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import func, select

from digest import db
from digest.app import gathering, issues, sending
from digest.app.wiring import Mailer, Project
from digest.config import Config, load_config
from digest.passwords import ScryptParams, hash_password
from digest.scaffold import scaffold
from digest.send import leases, ledger, reporting
from digest.send.outbox import OutboxTransport
from digest.stores.editors import EditorStore
from digest.stores.issues import issue_row
from digest.web import create_app
from digest.web.head_limit import HeadLimitedProtocol
from subscribers.store import SubscriberStore
from tests.conftest import FixedClock, free_port
from tests.digest.web.conftest import EditorSite, csrf_of, logged_in

CONFIG_EDITOR = "chief@northwind.example"
CONFIG_PASSWORD = "a long config password"


@contextmanager
def served(project: Project, mailer: Mailer | None = None) -> Iterator[str]:
    """The app of ``project`` under uvicorn on 127.0.0.1 (like the ``live`` fixture)."""
    app = create_app(project, mailer or project.mailer())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", http=HeadLimitedProtocol
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # only a failure waits this long
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def from_address(base: str, address: str) -> httpx.Client:
    """A client whose requests come from another loopback address (Linux routes 127/8 to lo)."""
    return httpx.Client(
        base_url=base, transport=httpx.HTTPTransport(local_address=address), timeout=10
    )


def approval_of(site: EditorSite, issue_id: int) -> str:
    with site.live.project.engine.connect() as conn:
        return issue_row(conn, issue_id).approval


def test_every_editor_page_needs_a_login(site: EditorSite) -> None:
    issue_id = site.issue_id()
    with site.live.client() as client:
        for path in (
            "/editor/",
            "/editor/history",
            f"/editor/issues/{issue_id}",
            f"/editor/issues/{issue_id}/preview?segment=backend",
            "/editor/files/images/logo.png",
        ):
            answer = client.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/editor/login?next=%2Feditor%2F"), path
        page = client.get("/subscribe")  # a CSRF cookie and field, but no session
        forged = client.post(
            f"/editor/issues/{issue_id}/approval",
            data={"csrf": csrf_of(page), "action": "approve"},
        )
        assert forged.status_code == 303 and "/editor/login" in forged.headers["location"]
    assert approval_of(site, issue_id) == "none"


def test_wrong_password_and_unknown_address_get_the_same_answer(site: EditorSite) -> None:
    with site.live.client() as client:
        wrong = site.login(client, password="not the password")
        site_unknown = EditorSite(site.live, email="nobody@northwind.example")
        unknown = site_unknown.login(client)
    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong email or password." in wrong.text
    strip = re.compile(r'value="[^"]*"')  # the echoed address and the CSRF field differ
    assert strip.sub("", wrong.text.replace(site.email, "")) == strip.sub(
        "", unknown.text.replace("nobody@northwind.example", "")
    )
    assert "digest_editor" not in wrong.headers.get("set-cookie", "")


def test_the_session_cookie_is_locked_down_and_logout_ends_it(site: EditorSite) -> None:
    with site.live.client() as client:
        answer = site.login(client)
        [cookie] = [
            h for h in answer.headers.get_list("set-cookie") if h.startswith("digest_editor=")
        ]
        for flag in ("HttpOnly", "SameSite=lax", "Path=/editor", "Max-Age=43200"):
            assert flag in cookie, flag
        assert "Secure" not in cookie  # http://localhost: a Secure cookie would never come back
        dashboard = client.get("/editor/")
        assert dashboard.status_code == 200 and "The Northwind Weekly" in dashboard.text
        assert dashboard.headers["Cache-Control"] == "no-store"
        bye = client.post("/editor/logout", data={"csrf": csrf_of(dashboard)})
        assert bye.status_code == 303
        assert client.get("/editor/").status_code == 303


def test_sessions_expire_after_the_configured_hours(site: EditorSite) -> None:
    with logged_in(site) as client:
        assert client.get("/editor/").status_code == 200
        site.live.clock.now += timedelta(hours=11, minutes=59)
        assert client.get("/editor/").status_code == 200
        site.live.clock.now += timedelta(minutes=1)
        assert client.get("/editor/").status_code == 303


def test_a_removed_editor_is_logged_out_at_once(site: EditorSite) -> None:
    with logged_in(site) as client:
        with site.live.project.engine.begin() as conn:
            assert EditorStore(conn).remove(site.email)
        assert client.get("/editor/").status_code == 303


def test_posts_without_the_csrf_field_are_refused(site: EditorSite) -> None:
    issue_id = site.issue_id()
    with logged_in(site) as client:
        page = client.get(f"/editor/issues/{issue_id}")
        assert page.status_code == 200
        missing = client.post(f"/editor/issues/{issue_id}/approval", data={"action": "approve"})
        wrong = client.post(
            f"/editor/issues/{issue_id}/approval", data={"action": "approve", "csrf": "0" * 64}
        )
        assert missing.status_code == wrong.status_code == 403
        assert approval_of(site, issue_id) == "none"
        right = client.post(
            f"/editor/issues/{issue_id}/approval",
            data={"action": "approve", "csrf": csrf_of(page), "note": "looks good"},
        )
        assert right.status_code == 303
    with site.live.project.engine.connect() as conn:
        row = issue_row(conn, issue_id)
    assert (row.approval, row.approval_by, row.approval_note) == (
        "approved",
        site.email,
        "looks good",
    )


def test_failed_logins_are_limited_per_client(site: EditorSite) -> None:
    with site.live.client() as client:
        for i in range(10):
            stranger = EditorSite(site.live, email=f"guess{i}@northwind.example")
            assert stranger.login(client, password="guess").status_code == 400
        refused = site.login(client)  # the right password, but this client is over the limit
        assert refused.status_code == 429 and "Too many failed attempts" in refused.text
        site.live.clock.now += timedelta(minutes=15)
        assert site.login(client).status_code == 303


def test_failed_logins_are_limited_per_account_across_clients(site: EditorSite) -> None:
    with from_address(site.live.base, "127.0.0.2") as first:
        for _ in range(10):
            assert site.login(first, password="guess").status_code == 400
    with from_address(site.live.base, "127.0.0.3") as second:
        refused = site.login(second)  # the right password, from a fresh client: still refused
        assert refused.status_code == 429
        other = EditorSite(site.live, email="someone@northwind.example")
        assert other.login(second, password="guess").status_code == 400  # not blocked


def test_the_next_parameter_never_leaves_the_editor_app(site: EditorSite) -> None:
    with site.live.client() as client:
        page = client.get("/editor/login?next=https://evil.example/")
        answer = client.post(
            "/editor/login",
            data={
                "csrf": csrf_of(page),
                "email": site.email,
                "password": site.password,
                "next": "//evil.example/editor",
            },
        )
    assert answer.status_code == 303 and answer.headers["location"] == "/editor/"


def test_leaving_out_and_reordering_change_the_preview(site: EditorSite) -> None:
    issue_id = site.issue_id()
    issue = issues.load(site.live.project, issue_id)
    backend = issue.section("backend").posts
    # The issue holds every new post; an email shows the first per_topic of each topic.
    first, last = backend[0], backend[: issue.per_topic or len(backend)][-1]
    with logged_in(site) as client:
        preview = f"/editor/issues/{issue_id}/preview?segment=backend"
        before = client.get(preview)
        assert before.status_code == 200 and first.post.title in before.text
        assert before.text.index(first.post.title) < before.text.index(last.post.title)
        assert "frame-ancestors 'self'" in before.headers["Content-Security-Policy"]
        page = client.get(f"/editor/issues/{issue_id}")
        field = csrf_of(page)
        post = f"/editor/issues/{issue_id}/posts"
        common = {"csrf": field, "topic": "backend", "segment": "backend", "width": "phone"}
        left_out = client.post(post, data={**common, "action": "exclude", "post": first.id})
        assert left_out.status_code == 303
        assert "segment=backend" in left_out.headers["location"]
        assert "width=phone" in left_out.headers["location"]
        for _ in range(len(backend)):
            client.post(post, data={**common, "action": "up", "post": last.id})
        after = client.get(preview).text
        assert first.post.title not in after
        second = backend[1].post.title
        assert after.index(last.post.title) < after.index(second)
        shown = client.get(f"/editor/issues/{issue_id}")
        assert "left out" in shown.text and "Put back" in shown.text


def test_previews_of_a_subscriber_of_text_and_of_a_bad_segment(site: EditorSite) -> None:
    issue_id = site.issue_id()
    with site.live.project.engine.begin() as conn:
        SubscriberStore(conn).add(
            "robin@example.com", "Robin Doe", frozenset({"data"}), site.live.clock(), "t"
        )
    with logged_in(site) as client:
        base = f"/editor/issues/{issue_id}/preview"
        mine = client.get(base, params={"as": "robin@example.com"})
        assert mine.status_code == 200 and "Robin" in mine.text
        assert "Data Engineering" in mine.text and "Frontend" not in mine.text
        text = client.get(base, params={"segment": "backend data", "format": "text"})
        assert text.headers["content-type"].startswith("text/plain")
        assert "Backend & Infrastructure" in text.text and "Data Engineering" in text.text
        assert client.get(base, params={"segment": "nope"}).status_code == 400
        assert client.get(base, params={"as": "stranger@example.com"}).status_code == 400
        page = client.get(f"/editor/issues/{issue_id}", params={"segment": "nope"})
        assert page.status_code == 200 and "no such segment" in page.text
        assert client.get("/editor/issues/9999").status_code == 404


def test_hold_then_skip_and_a_skipped_issue_cannot_be_approved(site: EditorSite) -> None:
    issue_id = site.issue_id()
    with logged_in(site) as client:
        field = csrf_of(client.get(f"/editor/issues/{issue_id}"))
        url = f"/editor/issues/{issue_id}/approval"
        assert client.post(url, data={"csrf": field, "action": "hold"}).status_code == 303
        assert approval_of(site, issue_id) == "held"
        assert client.post(url, data={"csrf": field, "action": "skip"}).status_code == 303
        assert approval_of(site, issue_id) == "skipped"
        late = client.post(url, data={"csrf": field, "action": "approve"})
        assert late.status_code == 409 and "skipped" in late.text
        history = client.get("/editor/history")
        assert "Issue 1" in history.text and "not public" in history.text
        assert "/archive/weekly/1/" not in history.text  # a skipped issue has no public page


def test_only_local_images_are_served(site: EditorSite) -> None:
    with logged_in(site) as client:
        logo = client.get("/editor/files/images/logo.png")
        assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
        for path in ("/editor/files/digest.toml", "/editor/files/../../etc/passwd"):
            assert client.get(path).status_code == 404, path


@pytest.fixture
def hold_config(tmp_path: Path, environ: dict[str, str]) -> Config:
    """Approval policy hold, an https public URL and an editor defined in the file."""
    path = scaffold(tmp_path / "hold")
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        "max_posts_per_topic = 4", 'max_posts_per_topic = 4\napproval = "hold"', 1
    ).replace('public_url = "http://localhost:8000"', 'public_url = "https://news.example.com"')
    cheap = hash_password(CONFIG_PASSWORD, ScryptParams(log2_n=12))
    text += f'\n[editor]\nsession_hours = 2\n\n[[editor.users]]\nemail = "{CONFIG_EDITOR}"\n'
    text += f'name = "Chief"\npassword_hash = "{cheap}"\n'
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ)


def keep_secure_cookie(client: httpx.Client, answer: httpx.Response, name: str) -> str:
    """The Set-Cookie header of ``name``; its value is kept by hand, because httpx returns a
    Secure cookie over https only and the test server speaks plain http."""
    header = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(name + "="))
    value = re.match(rf"{name}=([^;]+)", header)
    assert value
    client.cookies.set(name, value.group(1))
    return header


@pytest.fixture
def hold_project(hold_config: Config, clock: FixedClock) -> Project:
    project = Project.open(hold_config, clock=clock)
    gathering.gather_sources(project)
    with project.engine.begin() as conn:
        store = SubscriberStore(conn)
        for i in range(3):
            store.add(f"hold{i}@example.com", "", frozenset({"backend"}), clock(), "t")
    return project


def test_under_hold_approve_and_send_now_sends_in_the_background(hold_project: Project) -> None:
    project = hold_project
    with served(project) as base, httpx.Client(base_url=base, timeout=10) as client:
        page = client.get("/editor/login")
        keep_secure_cookie(client, page, "digest_csrf")
        answer = client.post(
            "/editor/login",
            data={"csrf": csrf_of(page), "email": CONFIG_EDITOR, "password": CONFIG_PASSWORD},
        )
        assert answer.status_code == 303
        cookie = keep_secure_cookie(client, answer, "digest_editor")
        assert "Secure" in cookie and "Max-Age=7200" in cookie  # https, session_hours = 2
        planned = issues.plan(project, "weekly")
        assert planned is not None and planned.issue.id is not None
        issue_id = planned.issue.id
        shown = client.get(f"/editor/issues/{issue_id}")
        assert "Approve and send now" in shown.text
        sent = client.post(
            f"/editor/issues/{issue_id}/approval",
            data={"csrf": csrf_of(shown), "action": "send-now"},
        )
        assert sent.status_code == 303 and "done=sending" in sent.headers["location"]
    # The server has shut down: uvicorn finishes background tasks before it exits.
    folder = OutboxTransport.issue_folder(project.config.outbox_dir, "weekly", 1)
    assert len(list(folder.glob("*.eml"))) == 3
    with project.engine.connect() as conn:
        row = issue_row(conn, issue_id)
    assert (row.status, row.approval, row.approval_by) == ("sent", "approved", CONFIG_EDITOR)


def test_an_issues_ambiguous_deliveries_are_sent_again_from_its_page(site: EditorSite) -> None:
    """The button does what `digest send --resend-ambiguous --issue N` does, on a closed
    issue too; like every form, only with the page's CSRF field."""
    project = site.live.project
    planned, report = sending.send(project)
    assert planned is not None and report is not None and report.finished
    issue_id = planned.issue.id
    assert issue_id is not None
    folder = OutboxTransport.issue_folder(project.config.outbox_dir, "weekly", 1)
    b, d = db.send_batches.c, db.deliveries.c
    with project.engine.begin() as conn:
        # One batch handed over without an answer (its readers' files are not in the outbox).
        batch_id = conn.execute(select(func.min(b.id)).where(b.issue_id == issue_id)).scalar_one()
        unknown = leases.mark_unknown(conn, batch_id, "no answer", project.clock())
        readers = conn.execute(select(d.subscriber_id).where(d.batch_id == batch_id)).scalars()
        gone = [f for r in readers for f in folder.glob(f"{r:06d}-*.eml")]
    for file in gone:
        file.unlink()
    assert unknown == len(gone) > 0
    url = f"/editor/issues/{issue_id}/resend"
    with logged_in(site) as client:
        page = client.get(f"/editor/issues/{issue_id}")
        assert "This issue was sent." in page.text and "Send the ambiguous ones again" in page.text
        assert f"{unknown} deliver" in page.text
        assert client.post(url, data={"csrf": "0" * 64}).status_code == 403
        assert client.post(url).status_code == 403
        with project.engine.connect() as conn:
            assert reporting.counts(conn, issue_id)[ledger.AMBIGUOUS] == unknown
        answer = client.post(url, data={"csrf": csrf_of(page)})
        assert answer.status_code == 303 and "done=resending" in answer.headers["location"]
        # Sent after the answer, in the background: until its outcome is in the ledger.
        deadline = time.monotonic() + 120  # only a failure waits this long
        while submitted_of(project, issue_id) < report.submitted and time.monotonic() < deadline:
            time.sleep(0.05)
        with project.engine.connect() as conn:
            counts = reporting.counts(conn, issue_id)
            assert counts == {ledger.SUBMITTED: report.submitted}
            assert reporting.ambiguities(conn, issue_id) == unknown  # the audit stays
        assert all(file.exists() for file in gone)
        after = client.get(f"/editor/issues/{issue_id}")
        assert "Send the ambiguous ones again" not in after.text


def test_the_resend_button_refuses_an_issue_that_never_went_out(site: EditorSite) -> None:
    issue_id = site.issue_id()
    with logged_in(site) as client:
        page = client.get(f"/editor/issues/{issue_id}")
        assert "Send the ambiguous ones again" not in page.text
        refused = client.post(f"/editor/issues/{issue_id}/resend", data={"csrf": csrf_of(page)})
        assert refused.status_code == 409
        assert "only an issue that went out has ambiguous deliveries" in refused.text


def submitted_of(project: Project, issue_id: int) -> int:
    with project.engine.connect() as conn:
        return reporting.counts(conn, issue_id)[ledger.SUBMITTED]
