"""Bounces and complaints of SMTP sends: the return path digests go out from, and the IMAP
mailbox that receives what comes back to it (``digest bounces fetch``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from digest.config.fields import EmailAddress, Section


class BouncesConfig(Section):
    address: EmailAddress | None = Field(
        default=None,
        description="the return path of SMTP digests: each goes out from address+<token>, so "
        "its mailbox must take subaddresses (bounces+…@ delivered to bounces@)",
    )
    imap_host: str | None = None
    imap_port: int | None = Field(
        default=None, ge=1, le=65535, description="default 993 with ssl, else 143"
    )
    imap_user: str | None = None
    imap_tls: Literal["ssl", "starttls", "none"] = "ssl"
    imap_folder: str = "INBOX"
    timeout_seconds: float = Field(default=30.0, gt=0)
    fetch_minutes: int = Field(
        default=10, ge=1, description="how often `digest scheduler` reads the mailbox"
    )

    @property
    def port(self) -> int:
        return self.imap_port or (993 if self.imap_tls == "ssl" else 143)
