"""The web app of `digest serve`: its readers' pages, its editors, and the keys that sign its
links."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from digest.config.environment import PREVIOUS_KEY_ENV
from digest.config.fields import EmailAddress, Section
from digest.passwords import InvalidHash, parse_hash


class SecurityConfig(Section):
    previous_key_until: datetime | None = Field(
        default=None,
        description=f"accept links signed with ${PREVIOUS_KEY_ENV} until then (key rotation)",
    )


class WebConfig(Section):
    subscribe_limit: int = Field(default=5, ge=1, description="sign-ups per client per window")
    subscribe_window_seconds: int = Field(default=600, ge=1)
    address_limit: int = Field(
        default=3,
        ge=1,
        description="confirmation and link emails to one address per window, whoever asks",
    )
    pause_days: int = Field(default=28, ge=1, le=365)


def _password_hash(value: str) -> str:
    try:
        parse_hash(value)
    except InvalidHash as err:
        raise ValueError(str(err)) from None
    return value


class EditorUserConfig(Section):
    """An editor defined in the file (the database holds those added with `digest editors add`).
    Only the hash is here, never the password: `digest editors hash` prints one."""

    email: EmailAddress
    name: str = ""
    password_hash: Annotated[str, AfterValidator(_password_hash)]


class EditorConfig(Section):
    """The editor web app under `/editor/` of `digest serve`."""

    users: list[EditorUserConfig] = Field(default_factory=list)
    session_hours: float = Field(default=12, gt=0, le=24 * 30, description="login lifetime")
    login_limit: int = Field(
        default=10, ge=1, description="failed logins per client, and per account, per window"
    )
    login_window_seconds: int = Field(default=900, ge=1)
    import_max_mb: int = Field(
        default=50,
        ge=1,
        le=2048,
        description="the largest subscriber file the editor app takes (the CLI has no limit)",
    )
    caniemail_csv: str | None = Field(
        default=None,
        description="caniemail's flat support CSV; preflight checks client support with it",
    )
