"""The web face, on Starlette, by audience:

* :mod:`digest.web.reader_pages`: sign-up with double opt-in, confirm, one's link,
  preferences, unsubscribe (RFC 8058 one-click) and leaving one topic;
* :mod:`digest.web.archive`: the issues' web-archive pages, the index and the Atom feed;
* :mod:`digest.web.webhook`: SendGrid's signed event webhook;
* :mod:`digest.web.editor_app`, :mod:`digest.web.issue_review`,
  :mod:`digest.web.subscriber_admin` and :mod:`digest.web.subscriber_import`: the editor app
  under ``/editor/``.

Endpoints are plain functions that find what they share (:class:`~digest.web.services.Services`)
on ``app.state`` and call only the application layer (:mod:`digest.app`), in a worker thread
so the event loop never blocks. Pages are Jinja2 templates in ``templates/web``; every form
carries a CSRF field (:mod:`digest.web.responses`); every response carries the security
headers (:mod:`digest.web.headers`). The readers' emails are sent by a background thread
after the answer, and the thread is drained when the server stops.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from digest.app.wiring import Mailer, Project, check_runtime
from digest.web import (
    archive,
    editor_app,
    figures,
    images,
    issue_review,
    reader_pages,
    subscriber_admin,
    subscriber_import,
    webhook,
)
from digest.web.body_limit import BodyLimit
from digest.web.headers import SecurityHeaders, server_error
from digest.web.responses import message
from digest.web.services import Services

log = logging.getLogger(__name__)
DRAIN_SECONDS = 120.0
"""How long a stopping server waits for the readers' queued emails (each send has the
transport's own timeout)."""


async def not_found(request: Request, error: Exception) -> Response:
    """A page in the site's style, not Starlette's bare text."""
    return message(
        request,
        404,
        "Page not found",
        "There is nothing at this address. The link may be mistyped, or cut off by your email "
        "program: try copying all of it.",
    )


async def not_allowed(request: Request, error: Exception) -> Response:
    """The same style; the Allow header Starlette names stays."""
    response = message(
        request,
        405,
        "That does not work here",
        "This page cannot be used that way. Go back and use the page's own links and buttons.",
    )
    allow = (getattr(error, "headers", None) or {}).get("Allow")
    if allow:
        response.headers["Allow"] = allow
    return response


async def too_large(request: Request, error: Exception) -> Response:
    return message(
        request,
        413,
        "That is more than this page takes",
        "What was sent is far larger than any of this site's forms. Go back, and send the "
        "form as the page gives it.",
    )


OWN_BODY_LIMITS = (webhook.PATH, subscriber_import.UPLOAD_PATH)
"""The paths that bound their bodies by their own settings."""


def create_app(project: Project, mailer: Mailer) -> Starlette:
    """The app for one project. ``mailer`` sends confirmation emails (the configured transport).
    Refused (DigestError) on a Python that does not check the email headers it writes."""
    check_runtime()
    services = Services.build(project, mailer)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services.drainer.start()  # its first drain takes what a crash left staged
        yield
        # Stopping: the requests have been answered; send the emails they promised.
        if not await run_in_threadpool(services.background.close, DRAIN_SECONDS):
            log.warning("stopped with readers' emails still queued")
        if not await run_in_threadpool(services.drainer.close, DRAIN_SECONDS):
            log.warning("stopped while draining the event inbox: the rest stays staged")

    app = Starlette(
        routes=[
            *editor_app.ROUTES,
            *issue_review.ROUTES,
            *subscriber_import.ROUTES,
            *subscriber_admin.ROUTES,
            *figures.ROUTES,
            *reader_pages.ROUTES,
            *archive.ROUTES,
            *webhook.ROUTES,
            *images.ROUTES,
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(BodyLimit, own_limits=OWN_BODY_LIMITS),
        ],
        exception_handlers={
            Exception: server_error,
            404: not_found,
            405: not_allowed,
            413: too_large,
        },
        lifespan=lifespan,
    )
    app.state.services = services
    return app
