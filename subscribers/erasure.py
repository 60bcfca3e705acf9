"""What is kept of a person erased on request: a keyed hash of their address, nothing else.

Erasing forgets the address, but a forgotten address is a new one: the next import of an old
list, or a sign-up typed by someone else, would add it again and mail it. So the erased row
keeps, instead of the address, ``erased:`` and an HMAC-SHA256 of the address (as addresses
are compared: case-insensitively) keyed with a key derived from the project's secret key.
Sign-up, ``subscribers add`` and import hash every address they are given and look the hash
up; an erased address is refused without ever being stored again.

Keyed, not a plain hash: addresses are guessable, and a plain SHA-256 of
``ada@example.com`` is found by hashing a list of likely addresses. Without the secret key,
which lives outside the database, a stolen copy of the database says nothing of who was
erased. The price: the hash is tied to that key. After a rotation the previous key
(``DIGEST_PREVIOUS_SECRET_KEY``) still matches the hashes made with it, for as long as it is
set; removing it forgets those erasures (``digest subscribers stats`` counts them as
"erased").
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

PREFIX = "erased:"
_SALT = b"digest.erasure"


def _derived(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), _SALT, hashlib.sha256).digest()


class ErasureHasher:
    """The hashes of an address under the current secret key and any earlier ones still set."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        """``secret_keys``: the current key first, then previous ones."""
        if not secret_keys:
            raise ValueError("an erasure hash needs the secret key")
        self._keys = [_derived(k) for k in secret_keys if k]

    @staticmethod
    def _canonical(address: str) -> bytes:
        return address.strip().lower().encode("utf-8")

    def key(self, address: str) -> str:
        """What an erased row keeps in place of ``address`` (its ``email_key``)."""
        return self._hash(self._keys[0], address)

    def keys(self, address: str) -> list[str]:
        """Every hash ``address`` may have been erased under (current key first)."""
        return [self._hash(key, address) for key in self._keys]

    def keys_of(self, addresses: Iterable[str]) -> dict[str, str]:
        """Hash → address, for looking a chunk of addresses up at once."""
        return {h: a for a in addresses for h in self.keys(a)}

    def _hash(self, key: bytes, address: str) -> str:
        return PREFIX + hmac.new(key, self._canonical(address), hashlib.sha256).hexdigest()
