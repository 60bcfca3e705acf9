"""What is kept of a person erased on request: a keyed hash of their address, nothing else.

Erasing forgets the address, but a forgotten address is a new one: the next import of an old
list, or a sign-up typed by someone else, would add it again and mail it. So the erased row
keeps, instead of the address, ``erased:`` and an HMAC-SHA256 of the address (as addresses
are compared: case-insensitively) keyed with the project's erasure key.
Sign-up, ``subscribers add`` and import hash every address they are given and look the hash
up; an erased address is refused without ever being stored again.

Keyed, not a plain hash: addresses are guessable, and a plain SHA-256 of
``ada@example.com`` is found by hashing a list of likely addresses. The key is kept in the
database wrapped with the project's secret key, which lives outside it (:class:`KeyWrap`): a
stolen copy of the database says nothing of who was erased. Kept apart from the secret key,
it outlives the secret key's rotation: while ``DIGEST_PREVIOUS_SECRET_KEY`` is set, opening
the project rewraps it with the new key, and the previous key can then go. (Hashes used to
be keyed with the secret key itself, so removing the previous key forgot every erasure; a
project adopts those keys, wrapped, the first time it opens with them.)

The person may come back, by their own hand only: the sign-up form (where anyone may type any
address) mails an erased address a confirmation link, as it would any address, but stores
nothing; the link carries the address sealed (:class:`ReturnSeal`), and opening it adds the
person as a new reader and lifts the hash. Imports and editors still find it refused until
then. The new reader is a new row: the erased one keeps its history, unlinked from them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "erased:"
LIFTED = PREFIX + "lifted:"
"""What an erased row keeps, followed by its id, once the person came back: no hash."""
_SALT = b"digest.erasure"
_RETURN_SALT = b"digest.erasure.return"
_WRAP_SALT = b"digest.erasure.wrap"


def derived_key(secret_key: str) -> bytes:
    """The key a hash was made with before the keys were kept in the database: derived from
    the secret key of the time (adopted by :meth:`SubscriberStore.erasure_keys`)."""
    return hmac.new(secret_key.encode("utf-8"), _SALT, hashlib.sha256).digest()


class ErasureHasher:
    """The hashes of an address under each of the project's erasure keys."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        """``keys``: the one new erasures are made with first."""
        if not keys:
            raise ValueError("an erasure hash needs a key")
        self._keys = list(keys)

    @staticmethod
    def _canonical(address: str) -> bytes:
        return address.strip().lower().encode("utf-8")

    def key(self, address: str) -> str:
        """What an erased row keeps in place of ``address`` (its ``email_key``)."""
        return self._hash(self._keys[0], address)

    def keys(self, address: str) -> list[str]:
        """Every hash ``address`` may have been erased under (the newest erasures' first)."""
        return [self._hash(key, address) for key in self._keys]

    def keys_of(self, addresses: Iterable[str]) -> dict[str, str]:
        """Hash → address, for looking a chunk of addresses up at once."""
        return {h: a for a in addresses for h in self.keys(a)}

    def _hash(self, key: bytes, address: str) -> str:
        return PREFIX + hmac.new(key, self._canonical(address), hashlib.sha256).hexdigest()


class ReturnSeal:
    """An erased person's address and name, sealed into the confirmation link that brings them
    back (Fernet: encrypted and authenticated, with keys derived from the secret keys, the
    current one first). The link goes to that address, but links are also kept by mail
    servers, link scanners and web logs, and nothing in the database may hold the address
    until its owner confirms: it travels in the link, readable by this project only."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        self._fernet = MultiFernet(_fernets(secret_keys, _RETURN_SALT, "a sealed address"))

    def seal(self, address: str, name: str) -> str:
        return self._fernet.encrypt(json.dumps([address, name]).encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> tuple[str, str]:
        """The address and name; ValueError when ``sealed`` is not one of this project's."""
        try:
            value = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except (InvalidToken, UnicodeError, ValueError):
            raise ValueError("not a sealed address of this project") from None
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            raise ValueError("not a sealed address of this project")
        return value[0], value[1]


class KeyWrap:
    """Erasure keys encrypted (and authenticated) with keys derived from the secret keys, the
    current one first: what the database keeps of them."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        fernets = _fernets(secret_keys, _WRAP_SALT, "wrapping a key")
        self._current = fernets[0]
        self._fernet = MultiFernet(fernets)

    def wrap(self, key: bytes) -> str:
        return self._fernet.encrypt(key).decode("ascii")

    def unwrap(self, wrapped: str) -> tuple[bytes, str | None]:
        """The key, and the same key wrapped with the current secret key when it was wrapped
        with a previous one (else None); ValueError when no secret key set opens it."""
        token = wrapped.encode("ascii")
        try:
            key = self._fernet.decrypt(token)
        except InvalidToken:
            raise ValueError("wrapped with a secret key that is not set") from None
        try:
            self._current.decrypt(token)
        except InvalidToken:
            return key, self._fernet.rotate(token).decode("ascii")
        return key, None


def _fernets(secret_keys: Sequence[str], salt: bytes, what: str) -> list[Fernet]:
    """A Fernet per secret key set (the current one first), each keyed for ``salt``'s use."""
    keys = [k for k in secret_keys if k]
    if not keys:
        raise ValueError(f"{what} needs the secret key")
    return [
        Fernet(base64.urlsafe_b64encode(hmac.new(k.encode("utf-8"), salt, hashlib.sha256).digest()))
        for k in keys
    ]
