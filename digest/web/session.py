"""Editor sessions and known devices, in cookies signed with the project secret (itsdangerous).

The session cookie holds the editor's address, the login time, a fingerprint of their password
hash and the session's secret. It ends when it is older than ``[editor] session_hours``
(checked against the injected clock, so tests need no sleeping), when the editor logs out (the
session's row is deleted: :mod:`digest.app.editors`, so a copy of the cookie stops working
too), when the editor's password changes (the fingerprint no longer matches) or when the secret
key is rotated.

The device cookie says "an editor logged in from this browser": a successful login leaves it,
for half a year. It opens nothing; it lets its browser past the per-account limit on failed
logins (:class:`digest.web.security.LoginGuard`), so strangers who fail on an account from many
addresses cannot lock its editor out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

SESSION_COOKIE = "digest_editor"
DEVICE_COOKIE = "digest_device"
DEVICE_LIFETIME = timedelta(days=180)
CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionClaim:
    email: str
    issued_at: datetime
    fingerprint: str
    secret: str
    """The session's secret: the session is live while the database has its hash."""


def fingerprint(password_hash: str) -> str:
    """Changes whenever the password does; reveals nothing usable about the hash."""
    return hashlib.sha256(b"digest.session:" + password_hash.encode()).hexdigest()[:16]


class Sessions:
    def __init__(self, secret_key: str, lifetime: timedelta, clock: Callable[[], datetime]) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt="digest.editor-session")
        self._devices = URLSafeSerializer(secret_key, salt="digest.editor-device")
        self.lifetime = lifetime
        self.clock = clock

    def issue(self, email: str, password_hash: str, secret: str) -> str:
        issued = int(self.clock().timestamp())
        return str(
            self._serializer.dumps(
                {"e": email, "t": issued, "h": fingerprint(password_hash), "s": secret}
            )
        )

    def read(self, cookie: str | None) -> SessionClaim | None:
        """The claim of a genuine, unexpired session cookie; None for anything else."""
        payload = _payload(self._serializer, cookie)
        email, issued, print_, secret = (payload.get(k) for k in ("e", "t", "h", "s"))
        if not (
            isinstance(email, str)
            and isinstance(issued, int)
            and isinstance(print_, str)
            and isinstance(secret, str)
        ):
            return None
        issued_at = datetime.fromtimestamp(issued, tz=UTC)
        if not self._fresh(issued_at, self.lifetime):
            return None
        return SessionClaim(email, issued_at, print_, secret)

    def valid_for(self, claim: SessionClaim, password_hash: str) -> bool:
        return hmac.compare_digest(claim.fingerprint, fingerprint(password_hash))

    def remember_device(self, account: str) -> str:
        """A device cookie for the editor ``account`` who just logged in from it."""
        issued = int(self.clock().timestamp())
        device = secrets.token_urlsafe(16)
        return str(self._devices.dumps({"e": account, "d": device, "t": issued}))

    def device_of(self, cookie: str | None, account: str) -> str | None:
        """The device's id if ``cookie`` is a genuine, unexpired device cookie of ``account``."""
        payload = _payload(self._devices, cookie)
        email, device, issued = (payload.get(k) for k in ("e", "d", "t"))
        if email != account or not isinstance(device, str) or not isinstance(issued, int):
            return None
        fresh = self._fresh(datetime.fromtimestamp(issued, tz=UTC), DEVICE_LIFETIME)
        return device if fresh else None

    def _fresh(self, issued_at: datetime, lifetime: timedelta) -> bool:
        now = self.clock()
        return issued_at <= now + CLOCK_SKEW and now - issued_at < lifetime


def _payload(serializer: URLSafeSerializer, cookie: str | None) -> dict[str, Any]:
    if not cookie:
        return {}
    try:
        payload = serializer.loads(cookie)
    except BadSignature:
        return {}
    return payload if isinstance(payload, dict) else {}
