"""The issues' web-archive pages ("view in browser"): every topic, no personal links, and
only issues that went out."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digest.web.responses import message
from digest.web.services import services


async def archive(request: Request) -> Response:
    html = await run_in_threadpool(
        services(request).readers.archive,
        request.path_params["digest"],
        int(request.path_params["number"]),
    )
    if html is None:
        return message(request, 404, "No such issue", "This issue does not exist (yet).")
    return HTMLResponse(html, headers={"Referrer-Policy": "no-referrer"})


ROUTES = [Route("/archive/{digest}/{number:int}/", archive, methods=["GET"])]
