"""A bound on the request body of every page: a form here is a few kilobytes.

Starlette reads a posted form whole into memory, each field up to 1 MB and up to a thousand
fields, so a single anonymous POST to the sign-up form could hold a gigabyte of the server's
memory (one of 300 MB took its peak from 118 to 424 MB). The routes that take larger bodies
bound them themselves, by their own settings: the Event Webhook (``webhook_max_bytes``) and
the editor's subscriber upload (``[editor] import_max_mb``).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_MAX_BYTES = 2**20
"""Room for the longest hostile name the tests send (900 KB) beside the other fields."""


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit:,} bytes")


class BodyLimit:
    """Refuses a body over ``limit`` bytes, except on ``own_limits`` (paths that bound their
    bodies themselves): from its declared length before any of it is read, and by counting
    when it comes without one (chunked). The refusal is raised where the route reads the
    body, as an HTTPException, so that the app's handler for 413 answers it."""

    def __init__(
        self, app: ASGIApp, limit: int = FORM_MAX_BYTES, own_limits: Collection[str] = ()
    ) -> None:
        self.app = app
        self.limit = limit
        self.own_limits = frozenset(own_limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.own_limits:
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = _declared_length(scope)
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, bounded_receive, send)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
