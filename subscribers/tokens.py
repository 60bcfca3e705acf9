"""Signed, purpose-bound tokens for the links in every email (itsdangerous).

A token for one purpose is refused for another, because each purpose signs with its own salt.
Rotation: after a new secret is set, tokens signed with the previous one (in emails already
sent) are accepted until a configured moment, then refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(StrEnum):
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    UNSUBSCRIBE_TOPIC = "unsubscribe-topic"
    CONFIRM = "confirm"


MAX_AGE = {
    Purpose.CONFIRM: timedelta(days=7),
    Purpose.PREFERENCES: timedelta(days=400),
    Purpose.UNSUBSCRIBE: timedelta(days=400),
    Purpose.UNSUBSCRIBE_TOPIC: timedelta(days=400),
}
"""A confirmation link is short-lived; links in digests keep working for over a year."""


class InvalidToken(Exception):
    """Tampered, expired or meant for another purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TokenSigner:
    def __init__(
        self,
        secret_key: str,
        *,
        previous_key: str | None = None,
        previous_until: datetime | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.secret_key = secret_key
        self.previous_key = previous_key
        self.previous_until = previous_until
        self.clock = clock
        self._serializers: dict[tuple[Purpose, tuple[str, ...]], URLSafeTimedSerializer] = {}

    def _keys(self) -> list[str]:
        # itsdangerous signs with the last key and accepts any of them.
        keys = [self.secret_key]
        if self.previous_key and (
            self.previous_until is None or self.clock() < self.previous_until
        ):
            keys.insert(0, self.previous_key)
        return keys

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        """Cached per purpose and key set: building one derives keys, which dominated the cost
        of the three or four links every recipient gets."""
        keys = tuple(self._keys())
        cache_key = (purpose, keys)
        serializer = self._serializers.get(cache_key)
        if serializer is None:
            serializer = URLSafeTimedSerializer(list(keys), salt=f"digest.{purpose.value}")
            self._serializers[cache_key] = serializer
        return serializer

    def sign(
        self, purpose: Purpose, subscriber_id: int, topic: str | None = None, **extra: object
    ) -> str:
        payload: dict[str, object] = {"s": subscriber_id, **extra}
        if topic is not None:
            payload["t"] = topic
        return str(self._serializer(purpose).dumps(payload))

    def verify(self, purpose: Purpose, token: str) -> dict[str, object]:
        """The payload (``s``: subscriber id, ``t``: topic, …) or InvalidToken."""
        serializer = self._serializer(purpose)
        try:
            payload, signed_at = serializer.loads(token, return_timestamp=True)
        except SignatureExpired:
            raise InvalidToken("expired") from None
        except BadSignature:
            raise InvalidToken("invalid") from None
        if self.clock() - signed_at > MAX_AGE[purpose]:
            raise InvalidToken("expired")
        if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
            raise InvalidToken("invalid")
        return payload
