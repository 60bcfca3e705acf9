"""The figures of the sent issues as CSV for the editors: one issue's funnel and clicks per
post, or the funnel of every issue of a digest. Text cells are guarded against spreadsheet
formulas (a post title is the feed's text); the funnel itself is on the dashboard and issue
pages (``web/editor/_engagement.html.j2``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.app import engagement
from digest.app.editorial import Editor
from digest.errors import DigestError
from digest.web.editor_app import EDITOR_HEADERS, editor_message, editors_only
from digest.web.services import services

CSV_TYPE = "text/csv; charset=utf-8"


def csv_response(name: str, body: str) -> Response:
    headers = dict(EDITOR_HEADERS)
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    # A BOM, so that Excel reads the UTF-8 of titles and names as UTF-8.
    return Response("\ufeff" + body, media_type=CSV_TYPE, headers=headers)


async def issue_figures(request: Request, editor: Editor) -> Response:
    project = services(request).project
    try:
        name, body = await run_in_threadpool(
            engagement.issue_csv, project, request.path_params["issue_id"]
        )
    except DigestError:
        return editor_message(request, editor, 404, "No such issue", "This issue does not exist.")
    return csv_response(name, body)


async def digest_figures(request: Request, editor: Editor) -> Response:
    project = services(request).project
    slug = request.path_params["digest"]
    try:
        body = await run_in_threadpool(engagement.digest_csv, project, slug)
    except DigestError:
        return editor_message(request, editor, 404, "No such digest", f"There is no digest {slug}.")
    return csv_response(f"{slug}-figures.csv", body)


ROUTES = [
    Route(
        "/editor/issues/{issue_id:int}/figures.csv", editors_only(issue_figures), methods=["GET"]
    ),
    Route("/editor/digests/{digest}/figures.csv", editors_only(digest_figures), methods=["GET"]),
]
