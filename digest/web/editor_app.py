"""The editor app under ``/editor/``, in the same Starlette app as the readers' pages: logging
in and out, the dashboard, the history and planning. One issue's page, its previews and the
actions on it are in :mod:`digest.web.issue_desk`.

Editors log in (scrypt hashes, a signed session cookie that expires and that logging out
revokes in the database, failed logins limited per client, per account and per known device:
:class:`~digest.web.security.LoginGuard`). Every POST needs the CSRF field; every page needs a
session.
The use cases (:class:`digest.app.editorial.Editorial`) run in a worker thread.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.app import editors, subscribers
from digest.app.editorial import Editor, editor_key
from digest.app.issues import why_nothing
from digest.app.wiring import archive_url
from digest.errors import DigestError, NoReaders
from digest.schedule.words import schedule_in_words
from digest.web.responses import checked_form, client_of, page, redirect
from digest.web.services import services
from digest.web.session import DEVICE_COOKIE, DEVICE_LIFETIME, SESSION_COOKIE

EDITOR_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # unsent issues and subscriber addresses: keep out of caches
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
    "https: file:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
}
DONE = {
    "planned": "Planned the next issue.",
    "excluded": "The post is left out of this issue.",
    "included": "The post is back in this issue.",
    "moved": "Moved.",
    "noted": "The editor’s note is saved; every segment’s email shows it.",
    "approved": "Approved. The scheduler sends it at the next slot.",
    "held": "Held: it will not be sent until someone approves it.",
    "skipped": "Skipped: this issue will not be sent.",
    "sending": "Approved and sending now. Reload to follow the figures.",
    "resending": "Sending the ambiguous deliveries again. Reload to follow the figures.",
}

EditorHandler = Callable[[Request, Editor], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def until(moment: datetime | None, now: datetime) -> str:
    """ "in 2 days 3 h", "in 40 min", "now": how far off a slot is, at a glance."""
    if moment is None:
        return ""
    minutes = int((moment - now).total_seconds() // 60)
    if minutes <= 0:
        return "now"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"in {days} day{'s' if days > 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"in {hours} h" + (f" {mins} min" if mins else "")
    return f"in {mins} min"


def safe_next(target: str | None) -> str:
    """Only our own editor pages: never an open redirect to another site."""
    if target and target.startswith("/editor") and not target.startswith("//"):
        return target
    return "/editor/"


# pages and sessions ------------------------------------------------------------------------


def editor_page(
    request: Request, editor: Editor | None, template: str, status: int = 200, **values: Any
) -> Response:
    return page(
        request,
        template,
        status=status,
        headers=EDITOR_HEADERS,
        editor=editor,
        archive_for=lambda digest, number: archive_url("", digest, number),
        in_words=schedule_in_words,
        **values,
    )


def editor_message(
    request: Request, editor: Editor | None, status: int, title: str, text: str
) -> Response:
    return editor_page(
        request, editor, "web/editor/message.html.j2", status=status, title=title, text=text
    )


async def current_editor(request: Request) -> Editor | None:
    """The editor whose session cookie this is: genuine, unexpired, not logged out, and made
    with their current password."""
    found = services(request)
    claim = found.sessions.read(request.cookies.get(SESSION_COOKIE))
    if claim is None:
        return None
    editor = await run_in_threadpool(editors.in_session, found.project, claim.email, claim.secret)
    if editor is None or not found.sessions.valid_for(claim, editor.password_hash):
        return None
    return editor


def editors_only(handler: EditorHandler) -> Endpoint:
    """``handler`` with the logged-in editor; without a session, the login page, which comes
    back here afterwards."""

    async def endpoint(request: Request) -> Response:
        editor = await current_editor(request)
        if editor is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect("/editor/login?" + urlencode({"next": target}))
        return await handler(request, editor)

    return endpoint


# login -------------------------------------------------------------------------------------


def login_page(
    request: Request, email: str, target: str, error: str | None, status: int = 200
) -> Response:
    return editor_page(
        request,
        None,
        "web/editor/login.html.j2",
        status=status,
        email=email,
        next=target,
        error=error,
    )


def logged_in(request: Request, login: editors.Login, target: str) -> Response:
    """Back to ``target`` with a new session cookie, and a device cookie for this browser."""
    found = services(request)
    editor = login.editor
    response = redirect(target)
    response.set_cookie(
        DEVICE_COOKIE,
        found.sessions.remember_device(editor.email),
        max_age=int(DEVICE_LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",  # only the login form, on this site, needs it
        secure=found.secure_cookie,
        path="/editor/login",
    )
    response.set_cookie(
        SESSION_COOKIE,
        found.sessions.issue(editor.email, editor.password_hash, login.secret),
        max_age=int(found.sessions.lifetime.total_seconds()),
        httponly=True,
        # Lax, not Strict: the approval email's link must open the issue logged in.
        # Every change is a POST with a CSRF field, so Lax gives nothing away.
        samesite="lax",
        secure=found.secure_cookie,
        path="/editor",
    )
    return response


async def login(request: Request) -> Response:
    if request.method == "GET":
        target = safe_next(request.query_params.get("next"))
        if await current_editor(request) is not None:
            return redirect(target)
        return login_page(request, "", target, None)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = services(request)
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "")))
    client = client_of(request)
    account = editor_key(email)
    device = found.sessions.device_of(request.cookies.get(DEVICE_COOKIE), account)
    if found.logins.refused(client, account, device):
        minutes = max(1, round(found.logins.window.total_seconds() / 60))
        error = f"Too many failed attempts. Please wait {minutes} minutes and try again."
        return login_page(request, email, target, error, status=429)
    login = await run_in_threadpool(editors.login, found.project, email, password)
    if login is None:
        found.logins.failed(client, account, device)
        # The same answer whichever of the two was wrong.
        return login_page(request, email, target, "Wrong email or password.", status=400)
    return logged_in(request, login, target)


async def logout(request: Request) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = services(request)
    claim = found.sessions.read(request.cookies.get(SESSION_COOKIE))
    if claim is not None:
        await run_in_threadpool(editors.logout, found.project, claim.secret)
    response = redirect("/editor/login?" + urlencode({"bye": "1"}))
    response.delete_cookie(
        SESSION_COOKIE, path="/editor", secure=services(request).secure_cookie, httponly=True
    )
    return response


# dashboard, history, planning --------------------------------------------------------------


async def editor_home(request: Request) -> Response:
    return redirect("/editor/")


async def dashboard(request: Request, editor: Editor) -> Response:
    found = services(request)
    cards = await run_in_threadpool(found.editorial.dashboard)
    readers = await run_in_threadpool(subscribers.cadence_counts, found.project)
    return editor_page(
        request,
        editor,
        "web/editor/dashboard.html.j2",
        cards=cards,
        readers=readers,
        until=lambda moment: until(moment, found.project.clock()),
        done=DONE.get(request.query_params.get("done", "")),
    )


async def history(request: Request, editor: Editor) -> Response:
    slug = request.query_params.get("digest") or None
    try:
        found = await run_in_threadpool(services(request).editorial.history, slug)
    except DigestError:
        return editor_message(request, editor, 404, "No such digest", f"There is no digest {slug}.")
    return editor_page(request, editor, "web/editor/history.html.j2", history=found)


async def plan(request: Request, editor: Editor) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = services(request)
    slug = request.path_params["digest"]
    try:
        found.project.config.digest(slug)
    except DigestError:
        return editor_message(request, editor, 404, "No such digest", f"There is no digest {slug}.")
    try:
        planned = await run_in_threadpool(found.editorial.plan, slug)
    except NoReaders as refused:
        return editor_message(request, editor, 200, "Nobody would get it", refused.message)
    if planned is None or planned.issue.id is None:
        why = await run_in_threadpool(why_nothing, found.project, slug)
        return editor_message(request, editor, 200, "Nothing to plan", f"{why}.")
    done = "planned" if planned.created else ""
    return redirect(f"/editor/issues/{planned.issue.id}?done={done}")


ROUTES = [
    Route("/editor", editor_home, methods=["GET"]),
    Route("/editor/login", login, methods=["GET", "POST"]),
    Route("/editor/logout", logout, methods=["POST"]),
    Route("/editor/", editors_only(dashboard), methods=["GET"]),
    Route("/editor/history", editors_only(history), methods=["GET"]),
    Route("/editor/digests/{digest}/plan", editors_only(plan), methods=["POST"]),
]
