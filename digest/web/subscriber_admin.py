"""The subscriber pages of the editor app, under ``/editor/subscribers``: find people a page at
a time, see one (status, topics, dates, the issues they were sent, the events), change their
topics, suppress them, download everything held on them as JSON, and erase them on request.

Logged-in editors only, every POST with its CSRF field, as every editor page; the use cases
are :mod:`digest.app.people`, run in a worker thread.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.app import people
from digest.app.editorial import Editor
from digest.errors import DigestError
from digest.web.editor_app import EDITOR_HEADERS, editor_message, editor_page, editors_only
from digest.web.responses import checked_form, redirect
from digest.web.services import services
from subscribers.models import Status

DONE = {
    "topics": "Topics saved.",
    "suppressed": "Suppressed: they get no more email from us.",
    "unchanged": "Already suppressed as strongly; nothing changed.",
    "erased": "Erased. Only a keyed hash of the address is kept, so it stays suppressed.",
}
MAX_QUERY = 320


def _status(text: str | None) -> Status | None:
    try:
        return Status(text) if text else None
    except ValueError:
        return None


def _after(text: str | None) -> int:
    return int(text) if text and text.isascii() and text.isdigit() else 0


async def search(request: Request, editor: Editor) -> Response:
    found = services(request)
    params = request.query_params
    text = params.get("q", "")[:MAX_QUERY]
    status = _status(params.get("status"))
    topic = params.get("topic") or None
    known = {t.slug for t in found.project.topics()}
    if topic not in known:
        topic = None
    after = _after(params.get("after"))
    result = await run_in_threadpool(people.find, found.project, text, status, topic, after)
    keep = {"q": text, "status": status.value if status else "", "topic": topic or ""}
    keep = {k: v for k, v in keep.items() if v}
    return editor_page(
        request,
        editor,
        "web/editor/subscribers.html.j2",
        found=result,
        q=text,
        status_filter=status.value if status else "",
        topic=topic or "",
        statuses=[s.value for s in Status],
        next_url=(
            "/editor/subscribers?" + urlencode({**keep, "after": result.next_after})
            if result.next_after is not None
            else None
        ),
        first_url=("/editor/subscribers?" + urlencode(keep)) if after else None,
        done=DONE.get(params.get("done", "")),
    )


def _id(request: Request) -> int:
    return int(request.path_params["subscriber_id"])


async def show(
    request: Request, editor: Editor, status: int = 200, alert: str | None = None
) -> Response:
    found = services(request)
    person = await run_in_threadpool(people.person, found.project, _id(request))
    if person is None or person.subscriber.status is Status.ERASED:
        return editor_message(
            request, editor, 404, "No such subscriber", "Nobody on the list has this number."
        )
    return editor_page(
        request,
        editor,
        "web/editor/subscriber.html.j2",
        status=status,
        person=person,
        suppressions=[s.value for s in people.SUPPRESSIONS],
        done=DONE.get(request.query_params.get("done", "")),
        alert=alert,
    )


async def subscriber(request: Request, editor: Editor) -> Response:
    return await show(request, editor)


async def change_topics(request: Request, editor: Editor) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    chosen = [str(v) for v in form.getlist("topic")]
    try:
        await run_in_threadpool(
            people.change_topics, services(request).project, _id(request), chosen
        )
    except DigestError as err:
        return await show(request, editor, 409, err.message)
    return redirect(f"/editor/subscribers/{_id(request)}?done=topics")


async def suppress(request: Request, editor: Editor) -> Response:
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    status = _status(str(form.get("as", "")))
    try:
        if status is None:
            raise DigestError("choose how to suppress them")
        _, changed = await run_in_threadpool(
            people.suppress, services(request).project, _id(request), status
        )
    except DigestError as err:
        return await show(request, editor, 409, err.message)
    return redirect(
        f"/editor/subscribers/{_id(request)}?done={'suppressed' if changed else 'unchanged'}"
    )


async def personal_data(request: Request, editor: Editor) -> Response:
    try:
        data = await run_in_threadpool(
            people.personal_data, services(request).project, _id(request)
        )
    except DigestError:
        return editor_message(
            request, editor, 404, "No such subscriber", "Nobody on the list has this number."
        )
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={
            **EDITOR_HEADERS,
            "Content-Disposition": f'attachment; filename="subscriber-{_id(request)}.json"',
        },
    )


async def erase(request: Request, editor: Editor) -> Response:
    """Erase only when the editor typed the address again: a slip of the mouse must not
    forget someone for good."""
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    project = services(request).project
    person = await run_in_threadpool(people.person, project, _id(request), 0)
    if person is None or person.subscriber.status is Status.ERASED:
        return editor_message(
            request, editor, 404, "No such subscriber", "Nobody on the list has this number."
        )
    typed = str(form.get("confirm", "")).strip().lower()
    if typed != person.subscriber.email.lower():
        return await show(
            request, editor, 409, "Type the address exactly as shown to confirm the erasure."
        )
    try:
        await run_in_threadpool(people.erase, project, _id(request))
    except DigestError as err:
        return await show(request, editor, 409, err.message)
    return redirect("/editor/subscribers?done=erased")


ROUTES = [
    Route("/editor/subscribers", editors_only(search), methods=["GET"]),
    Route("/editor/subscribers/{subscriber_id:int}", editors_only(subscriber), methods=["GET"]),
    Route(
        "/editor/subscribers/{subscriber_id:int}/topics",
        editors_only(change_topics),
        methods=["POST"],
    ),
    Route(
        "/editor/subscribers/{subscriber_id:int}/suppress",
        editors_only(suppress),
        methods=["POST"],
    ),
    Route(
        "/editor/subscribers/{subscriber_id:int}/data.json",
        editors_only(personal_data),
        methods=["GET"],
    ),
    Route("/editor/subscribers/{subscriber_id:int}/erase", editors_only(erase), methods=["POST"]),
]
