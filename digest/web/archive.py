"""The web archive: each issue's page ("view in browser"; link scanners fetch it as soon as an
email lands), the digest's index of issues and its Atom feed. Only issues that went out.

Pages are rendered once and kept (:mod:`digest.app.archive`); answers carry an ETag, a
Last-Modified and a Cache-Control that lets scanners and browsers keep them, and a conditional
GET that matches costs a 304 without a body.
"""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digest.app.archive import CACHE_CONTROL, ArchivePage
from digest.web.headers import SECURITY_HEADERS
from digest.web.responses import message
from digest.web.services import services

ATOM_TYPE = "application/atom+xml; charset=utf-8"


def _not_found(request: Request) -> Response:
    return message(request, 404, "No such issue", "This issue does not exist (yet).")


def _unchanged(request: Request, page: ArchivePage) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    tags = request.headers.get("if-none-match")
    if tags is not None:
        given = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return "*" in given or page.etag in given
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError, IndexError):
        return False
    return when.tzinfo is not None and page.last_modified.replace(microsecond=0) <= when


async def archive(request: Request) -> Response:
    pages = services(request).archive
    digest, number = request.path_params["digest"], request.path_params["number"]
    found = pages.remembered(digest, number)
    if found is None:  # not in this process's memory: the database, or a render
        found = await run_in_threadpool(pages.page, digest, number)
    if found is None:
        return _not_found(request)
    headers = {
        **SECURITY_HEADERS,
        "ETag": found.etag,
        "Last-Modified": format_datetime(found.last_modified, usegmt=True),
        "Cache-Control": CACHE_CONTROL,
    }
    if _unchanged(request, found):
        return Response(status_code=304, headers=headers)
    return HTMLResponse(found.body, headers=headers)


async def index(request: Request) -> Response:
    found = await run_in_threadpool(services(request).archive.index, request.path_params["digest"])
    if found is None:
        return message(request, 404, "No such digest", "There is no digest at this address.")
    body = services(request).readers.render("web/archive_index.html.j2", archive=found)
    return HTMLResponse(body, headers={**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL})


async def feed(request: Request) -> Response:
    found = await run_in_threadpool(services(request).archive.feed, request.path_params["digest"])
    if found is None:
        return message(request, 404, "No such digest", "There is no digest at this address.")
    return Response(
        found,
        media_type=ATOM_TYPE,
        headers={**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL},
    )


ROUTES = [
    Route("/archive/{digest}/", index, methods=["GET"]),
    Route("/archive/{digest}/feed.atom", feed, methods=["GET"]),
    Route("/archive/{digest}/{number:int}/", archive, methods=["GET"]),
]
