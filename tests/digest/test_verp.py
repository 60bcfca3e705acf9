"""Bounce tokens: they read back to the delivery they were made for, and nothing else does:
not a changed one, not one signed with another key, not a lookalike."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from digest.verp import TOKEN_PATTERN, BounceTokens, return_path

TOKENS = BounceTokens("test-secret-key-not-for-production")
ids = st.integers(min_value=1, max_value=10**12 - 1)


@given(ids, ids)
def test_a_token_reads_back_to_its_delivery_in_any_case(issue: int, subscriber: int) -> None:
    token = TOKENS.token(issue, subscriber)
    assert re.fullmatch(TOKEN_PATTERN, token)
    assert TOKENS.read(token) == (issue, subscriber)
    assert TOKENS.read(token.upper()) == (issue, subscriber)  # MTAs may change a local part's case
    address = return_path("bounces@northwind.example", token)
    assert address == f"bounces+{token}@northwind.example"
    assert len(address.partition("@")[0]) <= 64  # RFC 5321's limit on a local part


@given(ids, ids, st.data())
def test_no_other_token_names_a_delivery(issue: int, subscriber: int, data: st.DataObject) -> None:
    token = TOKENS.token(issue, subscriber)
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from("0123456789abcdefghijklmnopqrstuvwxyz234567-"))
    changed = token[:position] + replacement + token[position + 1 :]
    if changed != token:
        assert TOKENS.read(changed) != (issue, subscriber) or changed.lower() == token
    # Someone else's delivery with this token's signature:
    assert TOKENS.read(f"{issue}-{subscriber + 1}-{token.rsplit('-', 1)[1]}") is None
    assert BounceTokens("another-secret").read(token) is None


def test_a_rotated_key_is_still_read_and_never_signs() -> None:
    old = BounceTokens("old-secret")
    rotated = BounceTokens("new-secret", previous_secret="old-secret")
    assert rotated.read(old.token(3, 7)) == (3, 7)
    assert rotated.token(3, 7) != old.token(3, 7)
    assert BounceTokens("new-secret").read(old.token(3, 7)) is None
    for junk in ("", "3-7", "3-7-", "3-7-aaaaaaaaaaaaaaaa", "x-7-" + old.token(3, 7)[4:], " \n"):
        assert rotated.read(junk) is None
