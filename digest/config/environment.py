"""What comes from the environment rather than the file: where the file is, and the secrets.

Secrets never live in ``digest.toml`` (it is meant to be committed next to a blog's sources);
they are read from the environment mapping handed to the loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from digest.errors import SecretMissing

CONFIG_ENV = "DIGEST_CONFIG"
DEFAULT_CONFIG = "digest.toml"
SECRET_KEY_ENV = "DIGEST_SECRET_KEY"  # noqa: S105 (a variable name, not a secret)
SENDGRID_KEY_ENV = "SENDGRID_API_KEY"
SMTP_PASSWORD_ENV = "DIGEST_SMTP_PASSWORD"  # noqa: S105 (a variable name)
PREVIOUS_KEY_ENV = "DIGEST_PREVIOUS_SECRET_KEY"
SENDGRID_HOST_ENV = "SENDGRID_API_HOST"
IMAP_PASSWORD_ENV = "DIGEST_IMAP_PASSWORD"  # noqa: S105 (a variable name)


@dataclass(frozen=True)
class Secrets:
    """Values that come from the environment only."""

    secret_key: str | None = None
    sendgrid_api_key: str | None = None
    smtp_password: str | None = None
    previous_secret_key: str | None = None
    sendgrid_api_host: str | None = None
    """Not a secret, but an environment override (EU residency, tests)."""
    imap_password: str | None = None
    """The bounce mailbox's password (``[bounces]``)."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Secrets:
        """An empty variable counts as unset, as an exported but blank key would sign nothing."""
        return cls(
            secret_key=environ.get(SECRET_KEY_ENV) or None,
            sendgrid_api_key=environ.get(SENDGRID_KEY_ENV) or None,
            smtp_password=environ.get(SMTP_PASSWORD_ENV) or None,
            previous_secret_key=environ.get(PREVIOUS_KEY_ENV) or None,
            sendgrid_api_host=environ.get(SENDGRID_HOST_ENV) or None,
            imap_password=environ.get(IMAP_PASSWORD_ENV) or None,
        )

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise SecretMissing(
                f"{SECRET_KEY_ENV} is not set: it signs unsubscribe and preference links. "
                f'Set it to a long random value, e.g. export {SECRET_KEY_ENV}="$(python -c '
                "'import secrets; print(secrets.token_urlsafe(32))')\""
            )
        return self.secret_key


def resolve_config_path(given: str | Path | None, environ: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``$DIGEST_CONFIG``, then ``./digest.toml``."""
    if given:
        return Path(given)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)
