"""Signed, purpose-bound tokens for the links in every email (itsdangerous).

A token for one purpose is refused for another, because each purpose signs with its own salt.
"""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(StrEnum):
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    UNSUBSCRIBE_TOPIC = "unsubscribe-topic"
    CONFIRM = "confirm"


class InvalidToken(Exception):
    """Tampered, expired or meant for another purpose."""


class TokenSigner:
    def __init__(self, secret_key: str, *, previous_keys: tuple[str, ...] = ()) -> None:
        # itsdangerous signs with the last key and accepts any of them.
        self._keys = [*previous_keys, secret_key]

    def _serializer(self, purpose: Purpose) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._keys, salt=f"digest.{purpose.value}")

    def sign(self, purpose: Purpose, subscriber_id: int, topic: str | None = None) -> str:
        payload: dict[str, object] = {"s": subscriber_id}
        if topic is not None:
            payload["t"] = topic
        return str(self._serializer(purpose).dumps(payload))

    def verify(
        self, purpose: Purpose, token: str, max_age_seconds: int | None = None
    ) -> tuple[int, str | None]:
        try:
            payload = self._serializer(purpose).loads(token, max_age=max_age_seconds)
        except SignatureExpired:
            raise InvalidToken("expired") from None
        except BadSignature:
            raise InvalidToken("invalid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
            raise InvalidToken("invalid")
        topic = payload.get("t")
        return payload["s"], topic if isinstance(topic, str) else None
