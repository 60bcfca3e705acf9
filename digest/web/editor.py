"""The editor web app under ``/editor/``, in the same Starlette app as the subscriber pages.

Editors log in (scrypt hashes, a signed session cookie that expires, failed logins limited
per client and per account), see each digest's next slot and issue, open an issue to leave
posts out or reorder them, preview any segment or any subscriber's email at desktop and phone
widths or as plain text, read the preflight report, send themselves a test, and approve, hold
or skip. Every POST needs the CSRF field; every page needs a session.

Sending from here: "Approve and send now" approves and then sends the digest's next issue in
a background task after the answer is on its way (the page shows "sending" and the figures
fill in as batches go). A send cut short by a restart is resumed by the next `digest send`,
`digest run` or scheduled slot, like any other: the ledger knows what went out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.editors import Editor, editor_key
from digest.errors import DigestError
from digest.pipeline import Project, archive_url
from digest.web.editing_pages import EditorPages
from digest.web.security import RateLimit
from digest.web.session import SESSION_COOKIE, Sessions

Page = Callable[..., Response]
CheckedForm = Callable[[Request], Awaitable[FormData | Response]]

EDITOR_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",  # unsent issues and subscriber addresses: keep out of caches
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
    "https: file:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
}
PREVIEW_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # The email itself, framed by the issue page only; it may load its images, nothing runs.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
    "https: http: data: file:; frame-ancestors 'self'; form-action 'none'; base-uri 'none'",
}
WIDTHS = {"desktop": 600, "phone": 375}
DONE = {
    "planned": "Planned the next issue.",
    "excluded": "The post is left out of this issue.",
    "included": "The post is back in this issue.",
    "moved": "Moved.",
    "approved": "Approved. The scheduler sends it at the next slot.",
    "held": "Held: it will not be sent until someone approves it.",
    "skipped": "Skipped: this issue will not be sent.",
    "sending": "Approved and sending now. Reload to follow the figures.",
}


@dataclass(frozen=True)
class Kit:
    """What the editor routes borrow from the app: pages with the CSRF field, the CSRF check,
    redirects, and whether cookies must be Secure."""

    page: Page
    checked_form: CheckedForm
    redirect: Callable[[str], Response]
    secure_cookie: bool


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


def editor_routes(project: Project, kit: Kit) -> list[Route]:
    config = project.config.file.editor
    pages = EditorPages(project)
    lifetime = timedelta(hours=config.session_hours)
    sessions = Sessions(project.config.secrets.require_secret_key(), lifetime, project.clock)
    window = timedelta(seconds=config.login_window_seconds)
    per_client = RateLimit(config.login_limit, window, project.clock)
    per_account = RateLimit(config.login_limit, window, project.clock)

    def page(
        request: Request, editor: Editor | None, template: str, status: int = 200, **values: Any
    ) -> Response:
        return kit.page(
            request,
            template,
            status=status,
            headers=EDITOR_HEADERS,
            editor=editor,
            archive_for=lambda digest, number: archive_url("", digest, number),
            **values,
        )

    async def current(request: Request) -> Editor | None:
        claim = sessions.read(request.cookies.get(SESSION_COOKIE))
        if claim is None:
            return None
        editor = await run_in_threadpool(pages.editor, claim.email)
        if editor is None or not sessions.valid_for(claim, editor.password_hash):
            return None
        return editor

    Handler = Callable[[Request, Editor], Awaitable[Response]]

    def editors_only(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            editor = await current(request)
            if editor is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return kit.redirect("/editor/login?" + urlencode({"next": target}))
            return await handler(request, editor)

        return endpoint

    def message(
        request: Request, editor: Editor | None, status: int, title: str, text: str
    ) -> Response:
        return page(
            request, editor, "web/editor/message.html.j2", status=status, title=title, text=text
        )

    # login -------------------------------------------------------------------------------

    async def login(request: Request) -> Response:
        if request.method == "GET":
            if await current(request) is not None:
                return kit.redirect(safe_next(request.query_params.get("next")))
            return page(
                request,
                None,
                "web/editor/login.html.j2",
                email="",
                error=None,
                next=safe_next(request.query_params.get("next")),
            )
        form = await kit.checked_form(request)
        if isinstance(form, Response):
            return form
        email = str(form.get("email", "")).strip()
        password = str(form.get("password", ""))
        target = safe_next(str(form.get("next", "")))
        client = request.client.host if request.client else "unknown"
        account = editor_key(email)
        if per_client.blocked(client) or per_account.blocked(account):
            minutes = max(1, round(window.total_seconds() / 60))
            return page(
                request,
                None,
                "web/editor/login.html.j2",
                status=429,
                email=email,
                next=target,
                error=f"Too many failed attempts. Please wait {minutes} minutes and try again.",
            )
        editor = await run_in_threadpool(pages.login, email, password)
        if editor is None:
            per_client.hit(client)
            per_account.hit(account)
            return page(
                request,
                None,
                "web/editor/login.html.j2",
                status=400,
                email=email,
                next=target,
                error="Wrong email or password.",  # the same whichever of the two was wrong
            )
        response = kit.redirect(target)
        response.set_cookie(
            SESSION_COOKIE,
            sessions.issue(editor.email, editor.password_hash),
            max_age=int(lifetime.total_seconds()),
            httponly=True,
            # Lax, not Strict: the approval email's link must open the issue logged in.
            # Every change is a POST with a CSRF field, so Lax gives nothing away.
            samesite="lax",
            secure=kit.secure_cookie,
            path="/editor",
        )
        return response

    async def logout(request: Request) -> Response:
        form = await kit.checked_form(request)
        if isinstance(form, Response):
            return form
        response = kit.redirect("/editor/login?" + urlencode({"bye": "1"}))
        response.delete_cookie(
            SESSION_COOKIE, path="/editor", secure=kit.secure_cookie, httponly=True
        )
        return response

    # dashboard and history -------------------------------------------------------------

    async def dashboard(request: Request, editor: Editor) -> Response:
        cards = await run_in_threadpool(pages.dashboard)
        return page(
            request,
            editor,
            "web/editor/dashboard.html.j2",
            cards=cards,
            until=lambda moment: until(moment, project.clock()),
            done=DONE.get(request.query_params.get("done", "")),
        )

    async def plan(request: Request, editor: Editor) -> Response:
        form = await kit.checked_form(request)
        if isinstance(form, Response):
            return form
        slug = request.path_params["digest"]
        try:
            project.config.digest(slug)
        except DigestError:
            return message(request, editor, 404, "No such digest", f"There is no digest {slug}.")
        planned = await run_in_threadpool(pages.plan, slug)
        if planned is None or planned.issue.id is None:
            return message(
                request,
                editor,
                200,
                "Nothing new",
                "No new posts since the last issue: there is nothing to plan yet.",
            )
        done = "planned" if planned.created else ""
        return kit.redirect(f"/editor/issues/{planned.issue.id}?done={done}")

    async def history(request: Request, editor: Editor) -> Response:
        slug = request.query_params.get("digest") or None
        try:
            found = await run_in_threadpool(pages.history, slug)
        except DigestError:
            return message(request, editor, 404, "No such digest", f"There is no digest {slug}.")
        return page(
            request,
            editor,
            "web/editor/history.html.j2",
            history=found,
        )

    # one issue ---------------------------------------------------------------------------

    def view_state(source: Any) -> dict[str, str]:
        """The preview choices to keep across a form post: segment or subscriber, width, tab."""
        keep = {}
        for name in ("segment", "as", "width", "view"):
            value = str(source.get(name) or "").strip()
            if value:
                keep[name] = value
        return keep

    async def show_issue(
        request: Request,
        editor: Editor,
        issue_id: int,
        state: dict[str, str],
        status: int = 200,
        error: str | None = None,
        done: str | None = None,
    ) -> Response:
        if await run_in_threadpool(pages.row, issue_id) is None:
            return message(request, editor, 404, "No such issue", "This issue does not exist.")
        view = await run_in_threadpool(
            pages.issue_page, issue_id, state.get("segment"), state.get("as")
        )
        width = state.get("width", "desktop")
        if width not in WIDTHS:
            width = "desktop"
        tab = "text" if state.get("view") == "text" else "html"
        preview_query = {}
        if view.shown is not None:
            preview_query = (
                {"as": view.shown.as_email}
                if view.shown.as_email
                else {"segment": view.shown.param}
            )
        return page(
            request,
            editor,
            "web/editor/issue.html.j2",
            status=status,
            view=view,
            width=width,
            frame_width=WIDTHS[width],
            widths=WIDTHS,
            tab=tab,
            state=state,
            query=lambda **changes: urlencode(
                {k: v for k, v in ({**state, **changes}).items() if v}
            ),
            preview_src=f"/editor/issues/{issue_id}/preview?{urlencode(preview_query)}",
            alert=error or view.problem,
            done=done,
            local=pages.local_url,
        )

    async def issue(request: Request, editor: Editor) -> Response:
        issue_id = int(request.path_params["issue_id"])
        done_code = request.query_params.get("done", "")
        done = DONE.get(done_code)
        if done_code == "test":
            done = f"Test sent to {editor.email}."
        return await show_issue(
            request, editor, issue_id, view_state(request.query_params), done=done
        )

    async def preview(request: Request, editor: Editor) -> Response:
        issue_id = int(request.path_params["issue_id"])
        if await run_in_threadpool(pages.row, issue_id) is None:
            return PlainTextResponse("no such issue", status_code=404, headers=PREVIEW_HEADERS)
        try:
            shown = await run_in_threadpool(
                pages.preview,
                issue_id,
                request.query_params.get("segment"),
                request.query_params.get("as"),
            )
        except DigestError as err:
            return PlainTextResponse(str(err), status_code=400, headers=PREVIEW_HEADERS)
        if shown is None:
            return PlainTextResponse(
                "this issue has no posts left", status_code=404, headers=PREVIEW_HEADERS
            )
        if request.query_params.get("format") == "text":
            return PlainTextResponse(shown.text, headers=PREVIEW_HEADERS)
        return HTMLResponse(pages.localize(shown.html), headers=PREVIEW_HEADERS)

    async def local_file(request: Request, editor: Editor) -> Response:
        path = pages.local_file(request.path_params["path"])
        if path is None:
            return PlainTextResponse("not found", status_code=404, headers=PREVIEW_HEADERS)
        return FileResponse(path, headers={"Cache-Control": "private, max-age=300"})

    async def act(
        request: Request,
        editor: Editor,
        work: Callable[[int, FormData], Awaitable[str]],
    ) -> Response:
        """A POST on an issue: check CSRF, do ``work``, then back to the issue page with the
        preview choices kept; a refusal shows the page with the reason (409)."""
        form = await kit.checked_form(request)
        if isinstance(form, Response):
            return form
        issue_id = int(request.path_params["issue_id"])
        if await run_in_threadpool(pages.row, issue_id) is None:
            return message(request, editor, 404, "No such issue", "This issue does not exist.")
        state = view_state(form)
        try:
            done = await work(issue_id, form)
        except DigestError as err:
            return await show_issue(request, editor, issue_id, state, status=409, error=str(err))
        return kit.redirect(f"/editor/issues/{issue_id}?" + urlencode({**state, "done": done}))

    async def edit_posts(request: Request, editor: Editor) -> Response:
        async def work(issue_id: int, form: FormData) -> str:
            action = str(form.get("action", ""))
            try:
                post_id = int(str(form.get("post", "")))
            except ValueError:
                raise DigestError("no post given") from None
            await run_in_threadpool(
                pages.edit, issue_id, action, post_id, str(form.get("topic", ""))
            )
            return {"exclude": "excluded", "include": "included"}.get(action, "moved")

        return await act(request, editor, work)

    async def send_test(request: Request, editor: Editor) -> Response:
        async def work(issue_id: int, form: FormData) -> str:
            await run_in_threadpool(
                pages.send_test,
                issue_id,
                editor.email,
                str(form.get("segment") or "") or None,
                str(form.get("as") or "") or None,
            )
            return "test"

        return await act(request, editor, work)

    async def approval(request: Request, editor: Editor) -> Response:
        background: list[BackgroundTask] = []

        async def work(issue_id: int, form: FormData) -> str:
            action = str(form.get("action", ""))
            note = str(form.get("note", "")).strip()[:1000]
            send_now = await run_in_threadpool(pages.decide, issue_id, action, editor, note)
            if send_now is not None:
                background.append(BackgroundTask(pages.send_now, send_now))
                return "sending"
            return {"approve": "approved", "hold": "held", "skip": "skipped"}[action]

        response = await act(request, editor, work)
        if background:
            response.background = background[0]
        return response

    async def editor_home(request: Request) -> Response:
        return kit.redirect("/editor/")

    def get(path: str, handler: Handler) -> Route:
        return Route(path, editors_only(handler), methods=["GET"])

    def post(path: str, handler: Handler) -> Route:
        return Route(path, editors_only(handler), methods=["POST"])

    return [
        Route("/editor", editor_home, methods=["GET"]),
        Route("/editor/login", login, methods=["GET", "POST"]),
        Route("/editor/logout", logout, methods=["POST"]),
        get("/editor/", dashboard),
        get("/editor/history", history),
        post("/editor/digests/{digest}/plan", plan),
        get("/editor/issues/{issue_id:int}", issue),
        get("/editor/issues/{issue_id:int}/preview", preview),
        get("/editor/files/{path:path}", local_file),
        post("/editor/issues/{issue_id:int}/posts", edit_posts),
        post("/editor/issues/{issue_id:int}/test", send_test),
        post("/editor/issues/{issue_id:int}/approval", approval),
    ]
