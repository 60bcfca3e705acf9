"""SendGrid's Event Webhook: a signed POST of delivery events, staged by
:func:`digest.app.feedback.stage_webhook` (answered 200 with the events accepted and ignored
once they are durably staged) and applied soon after by the server's drain thread
(:class:`digest.app.feedback.Drainer`). Answers 404 while no public key is configured, 413
for a body over ``webhook_max_bytes`` (refused before it is read whole: the body is streamed
and reading stops at the limit), 403 for a bad, stale or impossible signature, 400 for a body
that is not an event batch."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.app import feedback
from digest.web.services import services

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


async def bounded_body(request: Request, limit: int) -> bytes | None:
    """The body if it is at most ``limit`` bytes, else None, having read no more than
    ``limit`` plus one chunk: a declared length over the limit is refused unread."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def sendgrid_events(request: Request) -> Response:
    project = services(request).project
    try:
        raw = await bounded_body(request, feedback.body_limit(project))
        if raw is None:
            return PlainTextResponse("the event batch is too large", status_code=413)
        staged = await run_in_threadpool(
            feedback.stage_webhook,
            project,
            raw,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(TIMESTAMP_HEADER),
        )
    except feedback.WebhookOff:
        return PlainTextResponse("the event webhook is not configured", status_code=404)
    except feedback.BadSignature:
        return PlainTextResponse("bad or stale signature", status_code=403)
    except feedback.NotABatch as problem:
        return PlainTextResponse(f"not an event batch: {problem}", status_code=400)
    services(request).drainer.wake()
    return JSONResponse({"accepted": staged.accepted, "ignored": staged.ignored})


PATH = "/webhooks/sendgrid"
ROUTES = [Route(PATH, sendgrid_events, methods=["POST"])]
