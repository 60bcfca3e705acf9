"""What is kept of an erased person, and the sealed address that brings them back: readable by
this project's keys only, the current one or the previous one during a rotation."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from subscribers.erasure import ErasureHasher, KeyWrap, ReturnSeal, derived_key

KEY, PREVIOUS = "Zx8vQm2Lr7TnW4pKc9HsB3fYd6GjE1aU5oRiN0tXwVq", "an older key, rotated out"


@given(address=st.emails(), name=st.text(max_size=200))
def test_a_sealed_address_opens_to_itself_and_shows_nothing_of_it(address: str, name: str) -> None:
    seal = ReturnSeal([KEY])
    sealed = seal.seal(address, name)
    assert seal.open(sealed) == (address, name)
    readable = [sealed, *(base64.urlsafe_b64decode(sealed).decode("latin-1"),)]
    for text in readable:
        assert address not in text
        assert len(name) < 4 or name not in text


def test_a_seal_opens_under_a_rotation_and_nowhere_else() -> None:
    before = ReturnSeal([PREVIOUS]).seal("ada@example.com", "Ada")
    assert ReturnSeal([KEY, PREVIOUS]).open(before) == ("ada@example.com", "Ada")
    for stranger in (ReturnSeal([KEY]), ReturnSeal(["someone else's key"])):
        with pytest.raises(ValueError, match="not a sealed address"):
            stranger.open(before)
    tampered = before[:-6] + ("A" if before[-6] != "A" else "B") + before[-5:]
    for garbage in (tampered, "", "not base64 at all", "é"):
        with pytest.raises(ValueError, match="not a sealed address"):
            ReturnSeal([KEY, PREVIOUS]).open(garbage)
    with pytest.raises(ValueError, match="needs the secret key"):
        ReturnSeal([""])


def test_the_erasure_hash_is_keyed_and_ignores_case_and_spaces() -> None:
    hasher = ErasureHasher([derived_key(KEY), derived_key(PREVIOUS)])
    assert hasher.key(" Ada@Example.COM ") == hasher.key("ada@example.com")
    assert hasher.keys("ada@example.com") == [
        hasher.key("ada@example.com"),
        ErasureHasher([derived_key(PREVIOUS)]).key("ada@example.com"),
    ]
    assert ErasureHasher([b"another key"]).key("ada@example.com") != hasher.key("ada@example.com")


@given(key=st.binary(min_size=32, max_size=32))
def test_a_wrapped_key_rewraps_with_the_new_secret_key_and_then_needs_no_other(key: bytes) -> None:
    wrapped = KeyWrap([PREVIOUS]).wrap(key)
    assert key.hex() not in wrapped
    assert KeyWrap([PREVIOUS]).unwrap(wrapped) == (key, None)
    opened, rewrapped = KeyWrap([KEY, PREVIOUS]).unwrap(wrapped)
    assert opened == key and rewrapped is not None
    assert KeyWrap([KEY]).unwrap(rewrapped) == (key, None)
    with pytest.raises(ValueError, match="not set"):
        KeyWrap([KEY]).unwrap(wrapped)
