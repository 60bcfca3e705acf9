"""The bounce token: which delivery a bounce or a complaint is about, signed so that nobody
can name someone else's.

The SMTP transport sends each digest from its own return path, ``bounces+<token>@domain``
(VERP: a DSN goes back to it), and carries the same token in the ``X-Digest-Bounce`` header
(a feedback report quotes the message's headers, not its envelope). A token is
``<issue id>-<subscriber id>-<signature>``: the signature is 80 bits of an HMAC-SHA256 under a
key derived from ``DIGEST_SECRET_KEY``, in lower-case base32, because mail systems may change
the case of a local part. Anyone can write a bounce naming an address; only a bounce holding
the token of that delivery is believed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

HEADER = "X-Digest-Bounce"
TOKEN_PATTERN = r"[0-9]{1,12}-[0-9]{1,12}-[a-z2-7]{16}"  # noqa: S105 (a pattern)
_TOKEN = re.compile(r"^(?P<issue>[0-9]{1,12})-(?P<subscriber>[0-9]{1,12})-(?P<mac>[a-z2-7]{16})$")
_PURPOSE = b"digest bounce token v1"


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _mac(key: bytes, issue_id: int, subscriber_id: int) -> str:
    digest = hmac.new(key, f"{issue_id}-{subscriber_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode().lower()


@dataclass(frozen=True)
class BounceTokens:
    """Makes and reads bounce tokens. ``previous_secret`` (during a key rotation) is accepted
    when reading, never used to sign."""

    secret: str
    previous_secret: str | None = None

    def token(self, issue_id: int, subscriber_id: int) -> str:
        return f"{issue_id}-{subscriber_id}-{_mac(_key(self.secret), issue_id, subscriber_id)}"

    def read(self, token: str) -> tuple[int, int] | None:
        """(issue id, subscriber id) of a token we signed, else None."""
        match = _TOKEN.match(token.strip().lower())
        if match is None:
            return None
        issue_id, subscriber_id = int(match["issue"]), int(match["subscriber"])
        secrets = [self.secret] + ([self.previous_secret] if self.previous_secret else [])
        for secret in secrets:
            if hmac.compare_digest(_mac(_key(secret), issue_id, subscriber_id), match["mac"]):
                return issue_id, subscriber_id
        return None


def return_path(address: str, token: str) -> str:
    """``bounces@example.com`` with ``token`` → ``bounces+<token>@example.com``."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{token}@{domain}"
