"""Signed link tokens: the fast per-recipient path makes exactly what itsdangerous verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers.tokens import InvalidToken, Purpose, TokenSigner

START = datetime(2026, 11, 23, 8, tzinfo=UTC)


@given(
    subscriber=st.integers(min_value=1, max_value=2**53),
    offset=st.integers(min_value=0, max_value=10**9),
)
def test_manage_tokens_verify_with_itsdangerous_and_name_their_subscriber(
    subscriber: int, offset: int
) -> None:
    at = START + timedelta(seconds=offset)
    signer = TokenSigner("secret", clock=lambda: at)
    token = signer.manage_token(subscriber)
    assert signer.verify(Purpose.MANAGE, token) == {"s": subscriber}
    assert token == signer.sign(Purpose.MANAGE, subscriber)
    assert signer.manage_tokens([subscriber, subscriber + 1]) == [
        token,
        signer.manage_token(subscriber + 1),
    ]
    other_key = TokenSigner("another secret", clock=lambda: at)
    with pytest.raises(InvalidToken, match="invalid"):
        other_key.verify(Purpose.MANAGE, token)


def test_a_token_serves_its_own_purpose_only_and_expires() -> None:
    now = [START]
    signer = TokenSigner("secret", clock=lambda: now[0])
    manage = signer.manage_token(7)
    confirm = signer.sign(Purpose.CONFIRM, 7, topics=["data"])
    with pytest.raises(InvalidToken):
        signer.verify(Purpose.CONFIRM, manage)
    with pytest.raises(InvalidToken):
        signer.verify(Purpose.MANAGE, confirm)
    assert signer.verify(Purpose.CONFIRM, confirm)["topics"] == ["data"]
    with pytest.raises(ValueError, match="subscriber id only"):
        signer.sign(Purpose.MANAGE, 7, topics=["data"])
    now[0] += timedelta(days=8)
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(Purpose.CONFIRM, confirm)
    assert signer.verify(Purpose.MANAGE, manage)["s"] == 7
    now[0] += timedelta(days=400)
    with pytest.raises(InvalidToken, match="expired"):
        signer.verify(Purpose.MANAGE, manage)


@pytest.mark.parametrize("garbage", ["", "7", "7.x.y", "abc.def.ghi", "7..", "-1.AAAA.AAAA"])
def test_malformed_manage_tokens_are_invalid_not_errors(garbage: str) -> None:
    with pytest.raises(InvalidToken, match="invalid"):
        TokenSigner("secret").verify(Purpose.MANAGE, garbage)
