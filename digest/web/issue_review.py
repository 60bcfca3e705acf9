"""One issue in the editor app: its page (posts per topic, segments with their preflight
counts, the preview at desktop and phone widths or as plain text), the preview itself, the
project's images, and the actions: leave posts out or reorder them, send oneself a test,
approve, hold or skip, and send an issue's ambiguous deliveries again (closed issues too).

"Approve and send now" approves and then sends the digest's next issue in a background task
after the answer is on its way (the page shows "sending" and the figures fill in as batches
go). A send cut short by a restart is resumed by the next `digest send`, `digest run` or
scheduled slot, like any other: the ledger knows what went out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.app.editorial import Editor
from digest.app.issues import NOTE_LIMIT
from digest.errors import DigestError
from digest.web.editor_app import DONE, editor_message, editor_page, editors_only
from digest.web.responses import checked_form, redirect
from digest.web.services import services

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


def view_state(source: Mapping[str, object]) -> dict[str, str]:
    """The preview choices to keep across a form post: segment or subscriber, width, tab."""
    keep = {}
    for name in ("segment", "as", "width", "view"):
        value = str(source.get(name) or "").strip()
        if value:
            keep[name] = value
    return keep


# the issue page ----------------------------------------------------------------------------


async def show_issue(
    request: Request,
    editor: Editor,
    issue_id: int,
    state: dict[str, str],
    status: int = 200,
    error: str | None = None,
    done: str | None = None,
) -> Response:
    editorial = services(request).editorial
    if await run_in_threadpool(editorial.row, issue_id) is None:
        return editor_message(request, editor, 404, "No such issue", "This issue does not exist.")
    view = await run_in_threadpool(
        editorial.issue_page, issue_id, state.get("segment"), state.get("as")
    )
    width = state.get("width", "desktop")
    if width not in WIDTHS:
        width = "desktop"
    preview_query = {}
    if view.shown is not None:
        preview_query = (
            {"as": view.shown.as_email} if view.shown.as_email else {"segment": view.shown.param}
        )
    return editor_page(
        request,
        editor,
        "web/editor/issue.html.j2",
        status=status,
        view=view,
        width=width,
        frame_width=WIDTHS[width],
        widths=WIDTHS,
        tab="text" if state.get("view") == "text" else "html",
        state=state,
        query=lambda **changes: urlencode({k: v for k, v in ({**state, **changes}).items() if v}),
        preview_src=f"/editor/issues/{issue_id}/preview?{urlencode(preview_query)}",
        alert=error or view.problem,
        done=done,
        local=editorial.local_url,
        note_limit=NOTE_LIMIT,
    )


async def issue(request: Request, editor: Editor) -> Response:
    issue_id = int(request.path_params["issue_id"])
    done_code = request.query_params.get("done", "")
    done = DONE.get(done_code)
    if done_code == "test":
        done = f"Test sent to {editor.email}."
    return await show_issue(request, editor, issue_id, view_state(request.query_params), done=done)


async def preview(request: Request, editor: Editor) -> Response:
    editorial = services(request).editorial
    issue_id = int(request.path_params["issue_id"])
    if await run_in_threadpool(editorial.row, issue_id) is None:
        return PlainTextResponse("no such issue", status_code=404, headers=PREVIEW_HEADERS)
    try:
        shown = await run_in_threadpool(
            editorial.preview,
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
    return HTMLResponse(editorial.localize(shown.html), headers=PREVIEW_HEADERS)


async def local_file(request: Request, editor: Editor) -> Response:
    path = services(request).editorial.local_file(request.path_params["path"])
    if path is None:
        return PlainTextResponse("not found", status_code=404, headers=PREVIEW_HEADERS)
    return FileResponse(path, headers={"Cache-Control": "private, max-age=300"})


# actions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acted:
    """What an action did (a key of ``DONE``, or "test") and what, if anything, runs after
    the answer is sent."""

    done: str
    then: BackgroundTask | None = None


Action = Callable[[Request, Editor, int, FormData], Awaitable[Acted]]


async def act(request: Request, editor: Editor, action: Action) -> Response:
    """A POST on an issue: check CSRF, do ``action``, then back to the issue page with the
    preview choices kept; a refusal shows the page with the reason (409)."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    issue_id = int(request.path_params["issue_id"])
    if await run_in_threadpool(services(request).editorial.row, issue_id) is None:
        return editor_message(request, editor, 404, "No such issue", "This issue does not exist.")
    state = view_state(form)
    try:
        acted = await action(request, editor, issue_id, form)
    except DigestError as err:
        return await show_issue(request, editor, issue_id, state, status=409, error=str(err))
    response = redirect(f"/editor/issues/{issue_id}?" + urlencode({**state, "done": acted.done}))
    if acted.then is not None:
        response.background = acted.then
    return response


async def change_posts(request: Request, editor: Editor, issue_id: int, form: FormData) -> Acted:
    action = str(form.get("action", ""))
    try:
        post_id = int(str(form.get("post", "")))
    except ValueError:
        raise DigestError("no post given") from None
    await run_in_threadpool(
        services(request).editorial.edit, issue_id, action, post_id, str(form.get("topic", ""))
    )
    return Acted({"exclude": "excluded", "include": "included"}.get(action, "moved"))


async def mail_test(request: Request, editor: Editor, issue_id: int, form: FormData) -> Acted:
    await run_in_threadpool(
        services(request).editorial.send_test,
        issue_id,
        editor.email,
        str(form.get("segment") or "") or None,
        str(form.get("as") or "") or None,
    )
    return Acted("test")


async def decide(request: Request, editor: Editor, issue_id: int, form: FormData) -> Acted:
    editorial = services(request).editorial
    action = str(form.get("action", ""))
    note = str(form.get("note", "")).strip()[:1000]
    send_now = await run_in_threadpool(editorial.decide, issue_id, action, editor, note)
    if send_now is not None:
        return Acted("sending", BackgroundTask(editorial.send_now, send_now))
    return Acted({"approve": "approved", "hold": "held", "skip": "skipped"}[action])


async def send_again(request: Request, editor: Editor, issue_id: int, form: FormData) -> Acted:
    """The issue's ambiguous deliveries, sent again after the answer is on its way (checked
    first: a refusal shows on the page)."""
    editorial = services(request).editorial
    digest, number = await run_in_threadpool(editorial.resendable, issue_id)
    return Acted("resending", BackgroundTask(editorial.resend_ambiguous, digest, number))


async def change_note(request: Request, editor: Editor, issue_id: int, form: FormData) -> Acted:
    note = str(form.get("editor_note", ""))
    await run_in_threadpool(services(request).editorial.set_note, issue_id, note)
    return Acted("noted")


async def edit_note(request: Request, editor: Editor) -> Response:
    return await act(request, editor, change_note)


async def edit_posts(request: Request, editor: Editor) -> Response:
    return await act(request, editor, change_posts)


async def send_test(request: Request, editor: Editor) -> Response:
    return await act(request, editor, mail_test)


async def approval(request: Request, editor: Editor) -> Response:
    return await act(request, editor, decide)


async def resend(request: Request, editor: Editor) -> Response:
    return await act(request, editor, send_again)


ROUTES = [
    Route("/editor/issues/{issue_id:int}", editors_only(issue), methods=["GET"]),
    Route("/editor/issues/{issue_id:int}/preview", editors_only(preview), methods=["GET"]),
    Route("/editor/files/{path:path}", editors_only(local_file), methods=["GET"]),
    Route("/editor/issues/{issue_id:int}/posts", editors_only(edit_posts), methods=["POST"]),
    Route("/editor/issues/{issue_id:int}/note", editors_only(edit_note), methods=["POST"]),
    Route("/editor/issues/{issue_id:int}/test", editors_only(send_test), methods=["POST"]),
    Route("/editor/issues/{issue_id:int}/approval", editors_only(approval), methods=["POST"]),
    Route("/editor/issues/{issue_id:int}/resend", editors_only(resend), methods=["POST"]),
]
