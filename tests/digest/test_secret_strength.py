"""How strong a signing secret is: random tokens pass, typed and repeated ones do not."""

from __future__ import annotations

import secrets

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.config import Secrets, secret_bits
from digest.errors import SecretMissing


@given(st.integers(0, 2**64))
def test_generated_tokens_of_32_bytes_always_pass(seed: int) -> None:
    del seed  # each example draws fresh tokens
    assert secret_bits(secrets.token_urlsafe(32)) >= 256
    assert secret_bits(secrets.token_hex(32)) >= 256


@pytest.mark.parametrize(
    ("key", "bits"),
    [
        ("test-secret-key-not-for-production", 163),
        ("k" * 100, 4),
        ("ab" * 40, 8),
        (secrets.token_hex(16), 128),
        ("", 0),
    ],
)
def test_short_typed_and_repeated_keys_count_little(key: str, bits: int) -> None:
    assert secret_bits(key) <= bits + 40
    with pytest.raises(SecretMissing, match="is too weak to sign links"):
        Secrets(secret_key=key or "x").require_secret_key()


@given(st.text(min_size=1, max_size=20), st.integers(2, 30))
def test_repeating_a_key_adds_nothing(part: str, times: int) -> None:
    assert secret_bits(part * times) <= secret_bits(part)
