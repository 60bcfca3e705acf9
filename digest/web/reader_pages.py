"""The readers' pages: sign up with double opt-in, confirm, ask for one's link, preferences,
unsubscribe (with RFC 8058 one-click) and leave one topic.

Links carry tokens signed per purpose (:mod:`subscribers.tokens`); every form carries the CSRF
field. The use cases (:class:`digest.app.readers.Readers`) run in a worker thread so the event
loop never blocks.

No enumeration: "subscribe me" and "email me my link" answer without looking the address up.
The use case that does (and may render and send an email) is queued for the app's background
thread, so the answer and its time are the same for a known, unknown or suppressed address.
Emails to one address are limited per window whoever asks (``[web] address_limit``), on top
of the per-client limits, and a request over that limit gets the same answer too.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from digest.app.readers import CHANGED_ELSEWHERE, preferences_version
from digest.web.responses import (
    SECURITY_HEADERS,
    checked_form,
    client_of,
    message,
    page,
    redirect,
)
from digest.web.services import services
from subscribers.importer import email_key
from subscribers.models import Subscriber
from subscribers.names import MAX_NAME_LENGTH
from subscribers.tokens import InvalidToken, Purpose
from subscribers.zones import MAX_ZONE_LENGTH

ONE_CLICK = "One-Click"
GET_POST = ["GET", "POST"]


def invalid(request: Request, error: InvalidToken) -> Response:
    return page(request, "web/invalid_link.html.j2", status=400, reason=error.reason)


def mail_later(request: Request, address: str, queue: Callable[[], None]) -> None:
    """``queue`` the use case that may mail ``address``, if the address is under its limit;
    the caller gives the same answer either way."""
    if services(request).address_limit.allow(email_key(address)):
        queue()


def cadence_fields(form: FormData) -> dict[str, str]:
    """Digest → the cadence its radio buttons (``cadence-<digest>``) say, as posted."""
    prefix = "cadence-"
    return {
        key[len(prefix) :]: str(form.get(key, ""))
        for key in form
        if key.startswith(prefix) and isinstance(form.get(key), str)
    }


def zone_field(form: FormData) -> str:
    """The posted time zone, no longer than the form shows back."""
    return str(form.get("time_zone", "")).strip()[:200]


async def home(request: Request) -> Response:
    return redirect("/subscribe")


# subscribe ---------------------------------------------------------------------------------


async def subscribe(request: Request) -> Response:
    if request.method == "GET":
        return page(request, "web/subscribe.html.j2", values={"propose_zone": True}, errors={})
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = services(request)
    if not found.signup_limit.allow(client_of(request)):
        return message(
            request, 429, "Too many sign-ups", "Please wait a few minutes before trying again."
        )
    name = str(form.get("name", "")).strip()
    errors, email, topics = found.readers.check_subscription(
        str(form.get("email", "")).strip(), [str(t) for t in form.getlist("topics")], name
    )
    posted_cadences, posted_zone = cadence_fields(form), zone_field(form)
    choice_errors, cadences, zone = found.readers.check_choices(posted_cadences, posted_zone)
    errors |= choice_errors
    if errors:
        # The form shows what was typed, but no more of it than a name may hold.
        values = {
            "email": email,
            "name": name[:MAX_NAME_LENGTH],
            "topics": topics,
            "cadences": posted_cadences,
            "time_zone": posted_zone[:MAX_ZONE_LENGTH],
        }
        return page(request, "web/subscribe.html.j2", status=400, values=values, errors=errors)
    mail_later(request, email, lambda: found.readers.subscribe(email, name, topics, cadences, zone))
    # The same answer whether or not the address is known: no enumeration.
    return redirect("/subscribe/check-your-email")


async def check_email(request: Request) -> Response:
    return message(
        request,
        200,
        "Check your inbox",
        "If the address can receive our emails, a confirmation link is on its way. Your "
        "subscription starts when you open it.",
    )


async def confirm(request: Request) -> Response:
    readers = services(request).readers
    token = request.path_params["token"]
    try:
        found = await run_in_threadpool(readers.confirming, token)
    except InvalidToken as bad:
        return invalid(request, bad)
    if request.method == "GET":
        return page(request, "web/confirm.html.j2", email=found[0], chosen=found[1])
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    preferences_token = await run_in_threadpool(readers.confirm, token)
    return redirect(f"/preferences/{preferences_token}?welcome=1")


# preferences -------------------------------------------------------------------------------


def preferences_page(
    request: Request,
    subscriber: Subscriber,
    token: str,
    notice: str | None,
    error: str | None,
    status: int = 200,
    choices: tuple[dict[str, str], str | None] = ({}, None),
    posted: dict[str, object] | None = None,
) -> Response:
    """``choices``: the reader's cadences and zone as stored; ``posted``: what a refused form
    held, shown again so that nothing typed is lost."""
    cadences, zone = choices
    return page(
        request,
        "web/preferences.html.j2",
        status=status,
        subscriber=subscriber,
        token=token,
        notice=notice,
        unsubscribe=token,
        error=error,
        now=services(request).project.clock(),
        cadences=cadences,
        time_zone=zone or "",
        posted=posted,
        seen=preferences_version(subscriber.topics, cadences, zone),
    )


async def preferences(request: Request) -> Response:
    readers = services(request).readers
    token = request.path_params["token"]
    try:
        subscriber, _ = await run_in_threadpool(readers.subscriber_for, Purpose.MANAGE, token)
    except InvalidToken as bad:
        return invalid(request, bad)
    choices = await run_in_threadpool(readers.choices_of, subscriber.id)
    if request.method == "GET":
        query = request.query_params
        notice = query.get("saved") or (query.get("welcome") and "welcome")
        return preferences_page(request, subscriber, token, notice, None, choices=choices)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    action = str(form.get("action", "save"))
    if action == "reconfirm":  # a fresh double opt-in, for a bounced or complained address
        mail_later(request, subscriber.email, lambda: readers.reconfirm(subscriber.id))
        return redirect(f"/preferences/{token}?saved=reconfirm")
    topics = [str(t) for t in form.getlist("topics")]
    cadences = cadence_fields(form)
    zone = zone_field(form) if "time_zone" in form else None
    seen = form.get("seen")
    error = await run_in_threadpool(
        readers.update_preferences,
        subscriber.id,
        action,
        topics,
        cadences,
        zone,
        seen if isinstance(seen, str) else None,
    )
    if error == CHANGED_ELSEWHERE:  # shown as they are now, with a version to save over
        try:
            subscriber, _ = await run_in_threadpool(readers.subscriber_for, Purpose.MANAGE, token)
        except InvalidToken as bad:  # erased in the meantime
            return invalid(request, bad)
        choices = await run_in_threadpool(readers.choices_of, subscriber.id)
        return preferences_page(request, subscriber, token, None, error, 409, choices=choices)
    if error:
        posted: dict[str, object] = {
            "topics": topics,
            "cadences": cadences,
            "time_zone": (zone or "")[:200],
        }
        return preferences_page(
            request, subscriber, token, None, error, 400, choices=choices, posted=posted
        )
    return redirect(f"/preferences/{token}?saved={action}")


async def no_token(request: Request) -> Response:
    """Without a personal link: offer to email it (the same answer for every address)."""
    if request.method == "GET":
        return page(request, "web/link_request.html.j2", email="", error=None)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    found = services(request)
    if not found.link_limit.allow(client_of(request)):
        return message(
            request, 429, "Too many requests", "Please wait a few minutes before trying again."
        )
    entered = str(form.get("email", "")).strip()
    error, email = found.readers.check_link_request(entered)
    if error:
        return page(request, "web/link_request.html.j2", status=400, email=entered, error=error)
    mail_later(request, email, lambda: found.readers.send_link(email))
    return message(
        request,
        200,
        "Check your inbox",
        "If the address gets our digests, a link to its preferences is on its way.",
    )


# unsubscribe -------------------------------------------------------------------------------


async def unsubscribe(request: Request) -> Response:
    readers = services(request).readers
    token = request.path_params["token"]
    try:
        subscriber, _ = await run_in_threadpool(readers.subscriber_for, Purpose.MANAGE, token)
    except InvalidToken as bad:
        if request.method == "POST":
            return PlainTextResponse(f"invalid link ({bad.reason})", status_code=400)
        return invalid(request, bad)
    if request.method == "GET":
        return page(request, "web/unsubscribe.html.j2", subscriber=subscriber, topic=None)
    form = await request.form()
    if form.get("List-Unsubscribe") == ONE_CLICK:
        # RFC 8058: the mail client's POST acts at once, without cookies or a page.
        await run_in_threadpool(readers.unsubscribe, subscriber.id)
        return PlainTextResponse("unsubscribed", headers=SECURITY_HEADERS)
    checked = await checked_form(request)
    if isinstance(checked, Response):
        return checked
    await run_in_threadpool(readers.unsubscribe, subscriber.id)
    return redirect("/unsubscribed")


async def unsubscribe_topic(request: Request) -> Response:
    found = services(request)
    token = request.path_params["token"]
    topic = request.path_params["topic"]
    try:
        subscriber, _ = await run_in_threadpool(found.readers.subscriber_for, Purpose.MANAGE, token)
    except InvalidToken as bad:
        return invalid(request, bad)
    if topic not in {t.slug for t in found.project.topics()}:
        return message(
            request,
            404,
            "No such topic",
            "This link names a topic we no longer publish. Your preferences page shows the "
            "topics you get.",
            link=(f"/preferences/{token}", "Your topics"),
        )
    if request.method == "GET":
        return page(request, "web/unsubscribe.html.j2", subscriber=subscriber, topic=topic)
    form = await checked_form(request)
    if isinstance(form, Response):
        return form
    await run_in_threadpool(found.readers.leave_topic, subscriber.id, topic)
    return redirect(f"/preferences/{token}?saved=left-topic")


async def unsubscribed(request: Request) -> Response:
    return message(
        request,
        200,
        "You are unsubscribed",
        "You will get no more digests from us. Changed your mind? You can subscribe again at "
        "any time.",
        link=("/subscribe", "Subscribe again"),
    )


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/subscribe", subscribe, methods=GET_POST),
    Route("/subscribe/check-your-email", check_email, methods=["GET"]),
    Route("/confirm/{token}", confirm, methods=GET_POST),
    Route("/preferences", no_token, methods=GET_POST),
    Route("/preferences/{token}", preferences, methods=GET_POST),
    Route("/unsubscribe", no_token, methods=["GET"]),
    Route("/unsubscribed", unsubscribed, methods=["GET"]),
    Route("/unsubscribe/{token}/topic/{topic}", unsubscribe_topic, methods=GET_POST),
    Route("/unsubscribe/{token}", unsubscribe, methods=GET_POST),
]
