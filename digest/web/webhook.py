"""SendGrid's Event Webhook: a signed POST of delivery events, applied by
:func:`digest.app.feedback.apply_webhook`. Answers 404 while no public key is configured, 403
for a bad or stale signature, 400 for a body that is not an event batch."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.app import feedback
from digest.web.services import services

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


async def sendgrid_events(request: Request) -> Response:
    raw = await request.body()
    try:
        report = await run_in_threadpool(
            feedback.apply_webhook,
            services(request).project,
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
    return JSONResponse(
        {
            "applied": dict(report.applied),
            "duplicates": report.duplicates,
            "suppressed": report.suppressed,
            "ignored": report.ignored,
        }
    )


ROUTES = [Route("/webhooks/sendgrid", sendgrid_events, methods=["POST"])]
