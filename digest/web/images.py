"""``/images/<name>``: the project's local images, published under content-hashed names
(:mod:`digest.app.images`) so that every reader's mail program can load the logo and heroes.
Public (an email's images are), immutable (a changed image gets a new name)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from digest.app.images import IMAGES_ROUTE, published_file
from digest.web.responses import message
from digest.web.services import services

CACHE = "public, max-age=31536000, immutable"


async def image(request: Request) -> Response:
    path = published_file(services(request).project.config.base_dir, request.path_params["name"])
    if path is None:
        return message(request, 404, "Page not found", "There is no such image.")
    return FileResponse(path, headers={"Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"})


ROUTES = [Route(IMAGES_ROUTE + "{name}", image, methods=["GET", "HEAD"])]
