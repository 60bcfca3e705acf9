"""How issues leave: the transport (outbox folder, SMTP or SendGrid), the sender's address,
and the batching and leases that let several workers send exactly once."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from digest.config.fields import EmailAddress, HttpUrl, Section, split_display_name


class SmtpConfig(Section):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)


class SendGridConfig(Section):
    api_host: HttpUrl = Field(
        default="https://api.sendgrid.com",
        description="https://api.eu.sendgrid.com for EU data residency; $SENDGRID_API_HOST wins",
    )
    timeout_seconds: float = Field(default=30.0, gt=0)
    retries: int = Field(default=4, ge=0, le=10)
    asm_group_id: int | None = Field(default=None, description="unsubscribe group")
    sandbox_mode: bool = False
    webhook_public_key: str | None = Field(
        default=None, description="the Event Webhook's verification key (base64), from SendGrid"
    )
    webhook_tolerance_seconds: int = Field(default=600, ge=1, description="older is stale")
    webhook_max_bytes: int = Field(
        default=5_000_000,
        ge=1024,
        description="a larger event batch is refused (413) before it is read whole",
    )


class SendingConfig(Section):
    transport: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    from_address: EmailAddress = Field(alias="from")
    reply_to: EmailAddress | None = None
    outbox_dir: str = "outbox"
    unsubscribe_mailto: EmailAddress | None = None
    feedback_sender_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{5,15}$",
        description="the SenderId of Gmail's Feedback-ID header (5-15 letters, digits, . _ -); "
        "default: from the sender's domain",
    )
    batch_size: int = Field(default=1000, ge=1, le=1000)
    in_flight: int = Field(
        default=4, ge=1, le=32, description="SendGrid requests under way at once"
    )
    lease_minutes: float = Field(
        default=10.0,
        gt=0,
        description="how long a worker holds a batch before others treat it as abandoned; "
        "longer than a request with all its retries",
    )
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    sendgrid: SendGridConfig = Field(default_factory=SendGridConfig)

    @model_validator(mode="after")
    def _lease_outlasts_a_request(self) -> SendingConfig:
        """A worker whose lease ran out looks dead to the others, which then treat its batch
        as ambiguous while it may still be sending it."""
        sendgrid = self.sendgrid
        worst = (sendgrid.retries + 1) * sendgrid.timeout_seconds + sendgrid.retries * 60
        if self.transport == "sendgrid" and self.lease_minutes * 60 <= worst:
            raise ValueError(
                f"lease_minutes: {self.lease_minutes:g} is shorter than one request with all "
                f"its retries can take ({worst / 60:.1f} minutes with sendgrid.timeout_seconds "
                f"= {sendgrid.timeout_seconds:g} and sendgrid.retries = {sendgrid.retries})"
            )
        return self

    @property
    def from_name(self) -> str:
        return split_display_name(self.from_address)[0]

    @property
    def from_email(self) -> str:
        return split_display_name(self.from_address)[1]
