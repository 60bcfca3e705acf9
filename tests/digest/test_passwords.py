"""Editor password hashes: scrypt in PHC-style strings, salted, parameters kept, bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import load_config
from digest.errors import ConfigError
from digest.passwords import (
    InvalidHash,
    ScryptParams,
    check_new_password,
    hash_password,
    needs_rehash,
    parse_hash,
    verify_password,
)
from digest.scaffold import scaffold

CHEAP = ScryptParams(log2_n=10, r=8, p=1)


def test_a_hash_verifies_its_password_and_nothing_else() -> None:
    stored = hash_password("correct horse battery")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batter", stored)
    assert not verify_password("Correct horse battery", stored)
    assert not verify_password("", stored)


def test_the_string_holds_scheme_parameters_salt_and_key() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$scrypt$ln=15,r=8,p=1$")
    params, salt, key = parse_hash(stored)
    assert params == ScryptParams() and len(salt) == 16 and len(key) == 32
    assert "=" not in stored.split("$", 3)[3]  # unpadded base64, as PHC strings are


def test_each_hash_has_its_own_salt() -> None:
    first, second = hash_password("same words here", CHEAP), hash_password("same words here", CHEAP)
    assert first != second
    assert verify_password("same words here", first) and verify_password("same words here", second)


def test_hashes_made_at_another_cost_still_verify_and_ask_for_a_rehash() -> None:
    cheap = hash_password("correct horse battery", CHEAP)
    assert cheap.startswith("$scrypt$ln=10,r=8,p=1$")
    assert verify_password("correct horse battery", cheap)
    assert needs_rehash(cheap)
    assert not needs_rehash(hash_password("correct horse battery"))
    assert needs_rehash("not a hash")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext-password",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "$scrypt$ln=15,r=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        "$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",  # 2**40: memory bomb
        "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",  # salt too short
        "$scrypt$ln=15,r=8,p=1$!!!!$aGFzaGhhc2hoYXNoaGFzaA",
    ],
)
def test_malformed_or_dangerous_hashes_are_refused(stored: str) -> None:
    with pytest.raises(InvalidHash):
        verify_password("whatever", stored)


def test_new_passwords_have_a_minimum() -> None:
    assert check_new_password("short") is not None
    assert check_new_password(" padded password ") is not None
    assert check_new_password("correct horse battery") is None


def test_config_users_need_a_real_hash(tmp_path: Path) -> None:
    path = scaffold(tmp_path / "site")
    good = hash_password("correct horse battery", CHEAP)
    base = path.read_text(encoding="utf-8")
    path.write_text(
        base + f'\n[[editor.users]]\nemail = "ed@example.com"\npassword_hash = "{good}"\n',
        encoding="utf-8",
    )
    config = load_config(path, {})
    assert config.file.editor.users[0].email == "ed@example.com"
    path.write_text(
        base + '\n[[editor.users]]\nemail = "ed@example.com"\npassword_hash = "hunter2"\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"editor\.users\[0\]\.password_hash: expected"):
        load_config(path, {})
