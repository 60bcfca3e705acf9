"""What every page of the web face does the same way: render a template with the CSRF field
(setting the CSRF cookie on a first visit), check a posted form's CSRF field, redirect after a
POST. The security headers are the middleware's (:mod:`digest.web.headers`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from digest.web.headers import SECURITY_HEADERS, ZONE_SCRIPT
from digest.web.security import CSRF_COOKIE, CSRF_FIELD, client_key
from digest.web.services import services

__all__ = ["SECURITY_HEADERS", "checked_form", "client_of", "message", "page", "redirect"]


def page(
    request: Request,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] = SECURITY_HEADERS,
    **values: Any,
) -> Response:
    found = services(request)
    cookie = request.cookies.get(CSRF_COOKIE) or found.csrf.new_cookie()
    body = found.readers.render(
        template, csrf=found.csrf.field_for(cookie), zone_script=ZONE_SCRIPT, **values
    )
    response = HTMLResponse(body, status_code=status, headers=dict(headers))
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=found.secure_cookie,
            path="/",
        )
    return response


def message(request: Request, status: int, title: str, text: str, **values: Any) -> Response:
    """A page that only says something (an error, a "check your inbox")."""
    return page(request, "web/message.html.j2", status=status, title=title, text=text, **values)


async def checked_form(request: Request) -> FormData | Response:
    """The posted form if its CSRF field matches the cookie, else the page saying so (403)."""
    form = await request.form()
    field = form.get(CSRF_FIELD)
    if not services(request).csrf.valid(
        request.cookies.get(CSRF_COOKIE), field if isinstance(field, str) else None
    ):
        return message(
            request,
            403,
            "This form has expired",
            "Please go back, reload the page and try again.",
        )
    return form


def redirect(url: str) -> Response:
    """303 See Other: after a POST the browser GETs ``url``."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def client_of(request: Request) -> str:
    """The key of the per-client rate limits: the client's address, an IPv6 one by its /64
    (:func:`~digest.web.security.client_key`)."""
    return client_key(request.client.host) if request.client else "unknown"
