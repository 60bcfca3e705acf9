"""The web face: subscriber pages (subscribe with double opt-in, confirm, preferences,
unsubscribe, RFC 8058 one-click), the issues' web-archive pages and the editor app
(:mod:`digest.web.editor`, under ``/editor/``), on Starlette.

Pages are Jinja2 templates in ``templates/web``. Every form carries a CSRF field; tokens in
links are signed per purpose (:mod:`subscribers.tokens`). Database work runs in a thread so
the event loop never blocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from digest.events import EventReport, apply_events, signature_valid
from digest.events import parse as parse_events
from digest.pipeline import Project
from digest.web.editor import Kit, editor_routes
from digest.web.pages import Pages
from digest.web.security import CSRF_COOKIE, CSRF_FIELD, Csrf, RateLimit
from subscribers.importer import normalize_email
from subscribers.tokens import InvalidToken, Purpose

Mailer = Callable[[EmailMessage], None]
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
ONE_CLICK = "One-Click"

SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",  # links carry tokens: never leak them to other sites
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' "
    "https: file:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def create_app(project: Project, mailer: Mailer) -> Starlette:
    """The app for one project. ``mailer`` sends confirmation emails (the configured transport)."""
    pages = Pages(project, mailer)
    csrf = Csrf(project.config.secrets.require_secret_key())
    web = project.config.file.web
    limit = RateLimit(
        web.subscribe_limit, timedelta(seconds=web.subscribe_window_seconds), project.clock
    )
    link_limit = RateLimit(
        web.subscribe_limit, timedelta(seconds=web.subscribe_window_seconds), project.clock
    )
    secure_cookie = urlsplit(project.config.site.public_url).scheme == "https"

    def page(
        request: Request,
        template: str,
        status: int = 200,
        headers: Mapping[str, str] = SECURITY_HEADERS,
        **values: Any,
    ) -> Response:
        cookie = request.cookies.get(CSRF_COOKIE) or csrf.new_cookie()
        body = pages.render(template, csrf=csrf.field_for(cookie), **values)
        response = HTMLResponse(body, status_code=status, headers=dict(headers))
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(
                CSRF_COOKIE,
                cookie,
                httponly=True,
                samesite="strict",
                secure=secure_cookie,
                path="/",
            )
        return response

    def invalid(request: Request, error: InvalidToken) -> Response:
        return page(request, "web/invalid_link.html.j2", status=400, reason=error.reason)

    async def checked_form(request: Request) -> FormData | Response:
        form = await request.form()
        field = form.get(CSRF_FIELD)
        if not csrf.valid(
            request.cookies.get(CSRF_COOKIE), field if isinstance(field, str) else None
        ):
            return page(
                request,
                "web/message.html.j2",
                status=403,
                title="This form has expired",
                text="Please go back, reload the page and try again.",
            )
        return form

    def redirect(url: str) -> Response:
        return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)

    # subscribe -------------------------------------------------------------------------

    async def subscribe(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "web/subscribe.html.j2", values={}, errors={})
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        client = request.client.host if request.client else "unknown"
        if not limit.allow(client):
            return page(
                request,
                "web/message.html.j2",
                status=429,
                title="Too many sign-ups",
                text="Please wait a few minutes before trying again.",
            )
        name = str(form.get("name", "")).strip()
        errors, email, topics = pages.check_subscription(
            str(form.get("email", "")).strip(), [str(t) for t in form.getlist("topics")]
        )
        if errors:
            values = {"email": email, "name": name, "topics": topics}
            return page(request, "web/subscribe.html.j2", status=400, values=values, errors=errors)
        await run_in_threadpool(pages.subscribe, email, name, topics)
        # The same answer whether or not the address is known: no enumeration.
        return redirect("/subscribe/check-your-email")

    async def check_email(request: Request) -> Response:
        return page(
            request,
            "web/message.html.j2",
            title="Check your inbox",
            text="If the address can receive our emails, a confirmation link is on its "
            "way. Your subscription starts when you open it.",
        )

    async def confirm(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            found = await run_in_threadpool(pages.subscriber_for, Purpose.CONFIRM, token)
        except InvalidToken as bad:
            return invalid(request, bad)
        if request.method == "GET":
            return page(request, "web/confirm.html.j2", subscriber=found[0], chosen=found[1])
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        preferences = await run_in_threadpool(pages.confirm, token)
        return redirect(f"/preferences/{preferences}?welcome=1")

    # preferences -----------------------------------------------------------------------

    async def preferences(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            subscriber, _ = await run_in_threadpool(pages.subscriber_for, Purpose.MANAGE, token)
        except InvalidToken as bad:
            return invalid(request, bad)
        if request.method == "GET":
            return page(
                request,
                "web/preferences.html.j2",
                subscriber=subscriber,
                token=token,
                notice=request.query_params.get("saved")
                or (request.query_params.get("welcome") and "welcome"),
                unsubscribe=token,
                error=None,
                now=project.clock(),
            )
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        action = str(form.get("action", "save"))
        topics = [str(t) for t in form.getlist("topics")]
        error = await run_in_threadpool(pages.update_preferences, subscriber.id, action, topics)
        if error:
            return page(
                request,
                "web/preferences.html.j2",
                status=400,
                subscriber=subscriber,
                token=token,
                notice=None,
                unsubscribe=token,
                error=error,
                now=project.clock(),
            )
        return redirect(f"/preferences/{token}?saved={action}")

    # unsubscribe -----------------------------------------------------------------------

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            subscriber, _ = await run_in_threadpool(pages.subscriber_for, Purpose.MANAGE, token)
        except InvalidToken as bad:
            if request.method == "POST":
                return PlainTextResponse(f"invalid link ({bad.reason})", status_code=400)
            return invalid(request, bad)
        if request.method == "GET":
            return page(request, "web/unsubscribe.html.j2", subscriber=subscriber, topic=None)
        form = await request.form()
        if form.get("List-Unsubscribe") == ONE_CLICK:
            # RFC 8058: the mail client's POST acts at once, without cookies or a page.
            await run_in_threadpool(pages.unsubscribe, subscriber.id)
            return PlainTextResponse("unsubscribed", headers=SECURITY_HEADERS)
        checked = await checked_form(request)
        if isinstance(checked, Response):
            return checked
        await run_in_threadpool(pages.unsubscribe, subscriber.id)
        return redirect("/unsubscribed")

    async def unsubscribe_topic(request: Request) -> Response:
        token = request.path_params["token"]
        topic = request.path_params["topic"]
        try:
            subscriber, _ = await run_in_threadpool(pages.subscriber_for, Purpose.MANAGE, token)
        except InvalidToken as bad:
            return invalid(request, bad)
        if topic not in {t.slug for t in project.topics()}:
            return page(
                request,
                "web/message.html.j2",
                status=404,
                title="No such topic",
                text="This link names a topic we no longer publish. Your preferences page "
                "shows the topics you get.",
                link=(f"/preferences/{token}", "Your topics"),
            )
        if request.method == "GET":
            return page(request, "web/unsubscribe.html.j2", subscriber=subscriber, topic=topic)
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        await run_in_threadpool(pages.leave_topic, subscriber.id, topic)
        return redirect(f"/preferences/{token}?saved=left-topic")

    async def unsubscribed(request: Request) -> Response:
        return page(
            request,
            "web/message.html.j2",
            title="You are unsubscribed",
            text="You will get no more digests from us. Changed your mind? You can "
            "subscribe again at any time.",
            link=("/subscribe", "Subscribe again"),
        )

    async def no_token(request: Request) -> Response:
        """Without a personal link: offer to email it (the same answer for every address)."""
        if request.method == "GET":
            return page(request, "web/link_request.html.j2", email="", error=None)
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        client = request.client.host if request.client else "unknown"
        if not link_limit.allow(client):
            return page(
                request,
                "web/message.html.j2",
                status=429,
                title="Too many requests",
                text="Please wait a few minutes before trying again.",
            )
        entered = str(form.get("email", "")).strip()
        try:
            email = normalize_email(entered)
        except ValueError:
            error = "Please enter a valid email address."
            return page(request, "web/link_request.html.j2", status=400, email=entered, error=error)
        await run_in_threadpool(pages.send_link, email)
        return page(
            request,
            "web/message.html.j2",
            title="Check your inbox",
            text="If the address gets our digests, a link to its preferences is on its way.",
        )

    async def archive(request: Request) -> Response:
        html = await run_in_threadpool(
            pages.archive, request.path_params["digest"], int(request.path_params["number"])
        )
        if html is None:
            return page(
                request,
                "web/message.html.j2",
                status=404,
                title="No such issue",
                text="This issue does not exist (yet).",
            )
        return HTMLResponse(html, headers={"Referrer-Policy": "no-referrer"})

    async def sendgrid_events(request: Request) -> Response:
        settings = project.config.sending.sendgrid
        if not settings.webhook_public_key:
            return PlainTextResponse("the event webhook is not configured", status_code=404)
        raw = await request.body()
        valid = signature_valid(
            raw,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(TIMESTAMP_HEADER),
            settings.webhook_public_key,
            project.clock(),
            timedelta(seconds=settings.webhook_tolerance_seconds),
        )
        if not valid:
            return PlainTextResponse("bad or stale signature", status_code=403)
        try:
            events = parse_events(raw)
        except ValueError as problem:
            return PlainTextResponse(f"not an event batch: {problem}", status_code=400)

        def apply() -> EventReport:
            with project.engine.begin() as conn:
                return apply_events(conn, events, project.clock())

        report = await run_in_threadpool(apply)
        return JSONResponse(
            {
                "applied": dict(report.applied),
                "duplicates": report.duplicates,
                "suppressed": report.suppressed,
                "ignored": report.ignored,
            }
        )

    async def home(request: Request) -> Response:
        return redirect("/subscribe")

    def route(
        path: str, endpoint: Callable[[Request], Awaitable[Response]], post: bool = False
    ) -> Route:
        return Route(path, endpoint, methods=["GET", "POST"] if post else ["GET"])

    editor = editor_routes(project, Kit(page, checked_form, redirect, secure_cookie))
    return Starlette(
        routes=[
            *editor,
            route("/", home),
            route("/subscribe", subscribe, post=True),
            route("/subscribe/check-your-email", check_email),
            route("/confirm/{token}", confirm, post=True),
            route("/preferences", no_token, post=True),
            route("/preferences/{token}", preferences, post=True),
            route("/unsubscribe", no_token),
            route("/unsubscribed", unsubscribed),
            route("/unsubscribe/{token}/topic/{topic}", unsubscribe_topic, post=True),
            route("/unsubscribe/{token}", unsubscribe, post=True),
            route("/archive/{digest}/{number:int}/", archive),
            Route("/webhooks/sendgrid", sendgrid_events, methods=["POST"]),
        ]
    )
