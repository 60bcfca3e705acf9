"""What is kept of the Event Webhook's events: the raw events for ``keep_days``, the figures
made from them (the rollups) for good."""

from __future__ import annotations

from pydantic import Field

from digest.config.fields import Section


class EventsConfig(Section):
    keep_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="days the raw events are kept (and who opened or clicked an issue is "
        "remembered after it was sent); the per-issue figures are kept for good",
    )
