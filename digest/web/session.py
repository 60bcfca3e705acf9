"""Editor sessions: a cookie holding the editor's address, the login time and a fingerprint of
their password hash, signed with the project secret (itsdangerous).

Nothing is stored on the server. A session ends when it is older than ``[editor]
session_hours`` (checked against the injected clock, so tests need no sleeping), when the
cookie is deleted (logout), when the editor's password changes (the fingerprint no longer
matches) or when the secret key is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer

SESSION_COOKIE = "digest_editor"
CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class SessionClaim:
    email: str
    issued_at: datetime
    fingerprint: str


def fingerprint(password_hash: str) -> str:
    """Changes whenever the password does; reveals nothing usable about the hash."""
    return hashlib.sha256(b"digest.session:" + password_hash.encode()).hexdigest()[:16]


class Sessions:
    def __init__(self, secret_key: str, lifetime: timedelta, clock: Callable[[], datetime]) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt="digest.editor-session")
        self.lifetime = lifetime
        self.clock = clock

    def issue(self, email: str, password_hash: str) -> str:
        issued = int(self.clock().timestamp())
        return str(
            self._serializer.dumps({"e": email, "t": issued, "h": fingerprint(password_hash)})
        )

    def read(self, cookie: str | None) -> SessionClaim | None:
        """The claim of a genuine, unexpired session cookie; None for anything else."""
        if not cookie:
            return None
        try:
            payload = self._serializer.loads(cookie)
        except BadSignature:
            return None
        if not isinstance(payload, dict):
            return None
        email, issued, print_ = payload.get("e"), payload.get("t"), payload.get("h")
        if not isinstance(email, str) or not isinstance(issued, int) or not isinstance(print_, str):
            return None
        issued_at = datetime.fromtimestamp(issued, tz=UTC)
        now = self.clock()
        if issued_at > now + CLOCK_SKEW or now - issued_at >= self.lifetime:
            return None
        return SessionClaim(email, issued_at, print_)

    def valid_for(self, claim: SessionClaim, password_hash: str) -> bool:
        return hmac.compare_digest(claim.fingerprint, fingerprint(password_hash))
