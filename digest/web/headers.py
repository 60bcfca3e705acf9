"""The security headers, on every response the app sends: pages, redirects, the archive,
the webhook's answers, images, and the router's own 404 and 405.

A pure ASGI middleware rather than a header list each endpoint passes: an endpoint that forgets
(the archive did), or an answer no endpoint makes (an unknown path, a wrong method), would go
out bare. An endpoint that needs other values (the editor's pages may frame the preview; the
preview may be framed by them) sets its own, and those are kept."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ZONE_SCRIPT = (
    '(function(){var f=document.getElementById("time_zone");'
    'if(!f||f.value||!f.hasAttribute("data-propose"))return;'
    'try{f.value=Intl.DateTimeFormat().resolvedOptions().timeZone||""}catch(e){}})();'
)
"""The one script the readers' pages run: the sign-up page proposes the browser's time zone
in its (empty) field. Without it (no JavaScript) the field stays empty: the digest's zone. It
is allowed by its hash, so no other script, inline or fetched, ever runs."""
_ZONE_HASH = base64.b64encode(hashlib.sha256(ZONE_SCRIPT.encode()).digest()).decode()

SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",  # links carry tokens: never leak them to other sites
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
    f"https: file:; script-src 'sha256-{_ZONE_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


class SecurityHeaders:
    """Adds each of ``headers`` that a response does not set itself."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in present:
                        present.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def server_error(request: Request, error: Exception) -> Response:
    """A failure's answer: no traceback, and the headers too (Starlette answers a failure
    outside every middleware, so this one sets them itself)."""
    return PlainTextResponse(
        "Something went wrong on our side. Please try again later.",
        status_code=500,
        headers=SECURITY_HEADERS,
    )
