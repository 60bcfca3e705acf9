"""Password hashes for editors: scrypt from the standard library, stored as PHC-style strings.

``$scrypt$ln=15,r=8,p=1$<salt>$<hash>`` (salt and hash in unpadded base64) keeps the cost
parameters next to the hash, so raising the cost later leaves old hashes verifiable, and
:func:`needs_rehash` says which ones to renew at the next login. scrypt is memory-hard: a
GPU guessing passwords pays 32 MiB per guess at the default cost, not just CPU time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "scrypt"
LOG2_N = 15
"""N = 2**15 with r = 8: 32 MiB and about 0.1 s per hash on this project's machines."""
BLOCK_SIZE = 8
PARALLELISM = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_LENGTH = 10
# Bounds on parameters read from a stored string: a hash in a config file must not be able
# to make every login allocate gigabytes.
MAX_LOG2_N = 20
MAX_BLOCK_SIZE = 32
MAX_PARALLELISM = 16


class InvalidHash(ValueError):
    """The string is not a password hash this module can verify."""


@dataclass(frozen=True)
class ScryptParams:
    log2_n: int = LOG2_N
    r: int = BLOCK_SIZE
    p: int = PARALLELISM

    def derive(self, password: str, salt: bytes, length: int = KEY_BYTES) -> bytes:
        n = 2**self.log2_n
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=n,
            r=self.r,
            p=self.p,
            maxmem=256 * n * self.r * self.p,  # twice what scrypt needs; its default is 32 MiB
            dklen=length,
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str, params: ScryptParams | None = None) -> str:
    """A fresh salted hash of ``password`` as a PHC-style string."""
    params = params or ScryptParams()
    salt = secrets.token_bytes(SALT_BYTES)
    key = params.derive(password, salt)
    return f"${SCHEME}$ln={params.log2_n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def parse_hash(stored: str) -> tuple[ScryptParams, bytes, bytes]:
    """Parameters, salt and key of a stored hash; :class:`InvalidHash` when it is not one."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != SCHEME:
        raise InvalidHash("expected '$scrypt$ln=…,r=…,p=…$salt$hash' (from `digest editors hash`)")
    try:
        fields = dict(item.split("=", 1) for item in parts[2].split(","))
        params = ScryptParams(int(fields["ln"]), int(fields["r"]), int(fields["p"]))
        salt, key = _unb64(parts[3]), _unb64(parts[4])
    except (ValueError, KeyError) as err:
        raise InvalidHash(f"malformed scrypt hash ({err})") from None
    if not (
        1 <= params.log2_n <= MAX_LOG2_N
        and 1 <= params.r <= MAX_BLOCK_SIZE
        and 1 <= params.p <= MAX_PARALLELISM
    ):
        raise InvalidHash("scrypt parameters out of range")
    if len(salt) < 8 or len(key) < 16:
        raise InvalidHash("salt or hash too short")
    return params, salt, key


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches; the comparison takes the same time wherever they differ."""
    params, salt, key = parse_hash(stored)
    return hmac.compare_digest(params.derive(password, salt, len(key)), key)


def needs_rehash(stored: str, params: ScryptParams | None = None) -> bool:
    """True when the hash was made with other parameters than today's (or is unreadable)."""
    try:
        return parse_hash(stored)[0] != (params or ScryptParams())
    except InvalidHash:
        return True


@functools.cache
def dummy_hash() -> str:
    """Verified against when an account does not exist, so a wrong address costs as much time
    as a wrong password and the login's timing does not tell which addresses are editors."""
    return hash_password(secrets.token_urlsafe(16))


def check_new_password(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if password.strip() != password:
        return "no spaces at the start or the end"
    return None
