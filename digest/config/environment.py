"""What comes from the environment rather than the file: where the file is, and the secrets.

Secrets never live in ``digest.toml`` (it is meant to be committed next to a blog's sources);
they are read from the environment mapping handed to the loader.
"""

from __future__ import annotations

import math
import string
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
SECRET_KEY_BITS = 256
"""A signing secret must carry at least 32 random bytes' worth of entropy."""
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 (a command, not a secret)

_BASE64 = set(string.ascii_letters + string.digits + "-_+/=")


def secret_bits(value: str) -> int:
    """An upper estimate of the random bits in ``value``: its length times the bits of the
    alphabet its characters come from (hex 4, base64 6, lowercase and a hyphen under 5, ...),
    counted only over the shortest period that repeats to make it (``"ab" * 32`` is worth two
    characters).

    Generous to a random token (``secrets.token_urlsafe(32)`` counts 258, ``token_hex(32)``
    256) and strict with typed words, which are worth less than their letters suggest: an
    estimate cannot prove a key random, but it refuses the short, the repeated and the typed."""
    period = _period(value)
    chars = set(period)
    lower, upper = chars & set(string.ascii_lowercase), chars & set(string.ascii_uppercase)
    if chars <= set(string.hexdigits) and not (lower and upper):
        alphabet = 16
    elif chars <= _BASE64 and lower and upper:
        alphabet = 64
    else:
        alphabet = (
            26 * bool(lower)
            + 26 * bool(upper)
            + 10 * bool(chars & set(string.digits))
            + 32 * bool(chars - set(string.ascii_letters + string.digits))
        )
    return int(len(period) * math.log2(max(alphabet, 2)))


def _period(value: str) -> str:
    """The shortest ``p`` such that ``value`` is ``p`` repeated at least twice (the last time
    perhaps cut), else ``value``: the length less the longest border, by the prefix function
    (linear time)."""
    border = [0] * len(value)
    for i in range(1, len(value)):
        k = border[i - 1]
        while k and value[i] != value[k]:
            k = border[k - 1]
        border[i] = k + (value[i] == value[k])
    period = len(value) - border[-1] if value else 0
    return value[:period] if 2 * period <= len(value) else value


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

    def secret_keys(self) -> list[str]:
        """The signing keys set: the current one, then the previous one during a rotation."""
        return [k for k in (self.secret_key, self.previous_secret_key) if k]

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise SecretMissing(
                f"{SECRET_KEY_ENV} is not set: it signs unsubscribe and preference links. "
                f'Set it to a long random value, e.g. export {SECRET_KEY_ENV}="$({MAKE_SECRET})"'
            )
        bits = secret_bits(self.secret_key)
        if bits < SECRET_KEY_BITS:
            raise SecretMissing(
                f"{SECRET_KEY_ENV} is too weak to sign links: {len(self.secret_key)} characters "
                f"worth about {bits} bits, and it needs {SECRET_KEY_BITS} (32 random bytes). "
                f'Make one with: export {SECRET_KEY_ENV}="$({MAKE_SECRET})"'
            )
        return self.secret_key


def resolve_config_path(given: str | Path | None, environ: Mapping[str, str]) -> Path:
    """``--config`` wins, then ``$DIGEST_CONFIG``, then ``./digest.toml``."""
    if given:
        return Path(given)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)
