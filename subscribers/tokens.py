"""Signed, purpose-bound tokens for links (itsdangerous).

Two purposes. ``CONFIRM`` carries the topics chosen at sign-up and lives a week. ``MANAGE`` is
the one token in every digest: the preference, unsubscribe and per-topic unsubscribe links all
carry it, because they grant the same thing (managing that one subscription) and one signature
per recipient instead of four is most of what a million-recipient send spends on links.

A token for one purpose is refused for another: each purpose signs with its own salt.
Rotation: after a new secret is set, tokens signed with the previous one (in emails already
sent) are accepted until a configured moment, then refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes


class Purpose(StrEnum):
    MANAGE = "manage"
    CONFIRM = "confirm"


MAX_AGE = {
    Purpose.CONFIRM: timedelta(days=7),
    Purpose.MANAGE: timedelta(days=400),
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
        self._serializers: dict[tuple[str, ...], URLSafeTimedSerializer] = {}
        self._managers: dict[tuple[str, ...], TimestampSigner] = {}
        self._manage_mac = hmac.new(
            _manage_signer([secret_key]).derive_key(), digestmod=_sha256_from_python
        )
        self._stamp: tuple[int, bytes] = (-1, b"")

    def _keys(self) -> tuple[str, ...]:
        # itsdangerous signs with the last key and accepts any of them.
        keys = [self.secret_key]
        if self.previous_key and (
            self.previous_until is None or self.clock() < self.previous_until
        ):
            keys.insert(0, self.previous_key)
        return tuple(keys)

    def _confirm_serializer(self) -> URLSafeTimedSerializer:
        keys = self._keys()
        serializer = self._serializers.get(keys)
        if serializer is None:
            serializer = URLSafeTimedSerializer(
                list(keys), salt="digest.confirm", signer=_timestamps_from(self.clock)
            )
            self._serializers[keys] = serializer
        return serializer

    def _manage_signer(self) -> TimestampSigner:
        keys = self._keys()
        signer = self._managers.get(keys)
        if signer is None:
            signer = self._managers[keys] = _manage_signer(list(keys))
        return signer

    def sign(self, purpose: Purpose, subscriber_id: int, **extra: object) -> str:
        if purpose is Purpose.MANAGE:
            if extra:
                raise ValueError("a manage token carries the subscriber id only")
            return self.manage_token(subscriber_id)
        payload: dict[str, object] = {"s": subscriber_id, **extra}
        return str(self._confirm_serializer().dumps(payload))

    def manage_token(self, subscriber_id: int, at: datetime | None = None) -> str:
        return self.manage_tokens((subscriber_id,), at)[0]

    def manage_tokens(self, subscriber_ids: Iterable[int], at: datetime | None = None) -> list[str]:
        """``<id>.<timestamp>.<signature>`` for each id, exactly what itsdangerous'
        TimestampSigner makes (and verifies, in :meth:`verify`), built from a keyed HMAC state
        that is copied per token and with the timestamp encoded once: this runs once per
        recipient of every send."""
        seconds = int((at or self.clock()).timestamp())
        if self._stamp[0] != seconds:
            self._stamp = (seconds, b"." + base64_encode(int_to_bytes(seconds)))
        stamp, keyed = self._stamp[1], self._manage_mac
        tokens = []
        for subscriber_id in subscriber_ids:
            value = b"%d%s" % (subscriber_id, stamp)
            mac = keyed.copy()
            mac.update(value)
            tokens.append((value + b"." + base64_encode(mac.digest())).decode("ascii"))
        return tokens

    def verify(self, purpose: Purpose, token: str) -> dict[str, object]:
        """The payload (``s``: subscriber id, ``topics`` for a confirmation) or InvalidToken."""
        try:
            if purpose is Purpose.MANAGE:
                value, signed_at = self._manage_signer().unsign(token, return_timestamp=True)
                payload: object = {"s": int(value)}
            else:
                payload, signed_at = self._confirm_serializer().loads(token, return_timestamp=True)
        except SignatureExpired:
            raise InvalidToken("expired") from None
        except (BadSignature, ValueError):
            raise InvalidToken("invalid") from None
        if self.clock() - signed_at > MAX_AGE[purpose]:
            raise InvalidToken("expired")
        if not isinstance(payload, dict) or not isinstance(payload.get("s"), int):
            raise InvalidToken("invalid")
        return payload


def _timestamps_from(clock: Callable[[], datetime]) -> type[TimestampSigner]:
    """A TimestampSigner that stamps with ``clock`` (itsdangerous reads the system time), so
    that a token's age is measured on the same clock it is checked against."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return ClockedSigner


def _sha256_from_python(data: bytes = b"") -> Any:
    """SHA-256 handed to :func:`hmac.new` as a plain callable, so that hmac keeps the keyed
    inner and outer hash states itself and a copy per token costs two hash copies. (Given the
    name "sha256", hmac goes through OpenSSL 3's HMAC, whose per-message setup cost three times
    as much.)"""
    return hashlib.sha256(data)


def _manage_signer(keys: list[str]) -> TimestampSigner:
    return TimestampSigner(keys, salt="digest.manage", digest_method=hashlib.sha256)
