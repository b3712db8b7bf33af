"""Password hashing for console users: argon2id, the current recommendation for stored
passwords (memory-hard, so a stolen store is slow to crack on GPUs)."""

from __future__ import annotations

from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults (RFC 9106's second recommended profile: 64 MiB, 3 passes); a
# login costs ~50 ms of one core, which also bounds how fast anyone can guess.
_HASHER: Final = PasswordHasher()
# Shorter passwords are refused by `numcfg user add`: guessable by hand through the form.
MIN_PASSWORD_LENGTH: Final = 8
# Verified when the name is unknown, so a login takes as long for a stranger as for a
# user with a wrong password (the time would tell which names exist).
_DUMMY_HASH: Final = _HASHER.hash("numcfg-no-such-user")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def rehash(password: str) -> str:
    """A fresh hash of a password that just verified (no length rule: it is in use)."""
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; an unknown user (None) costs the same time."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with older parameters than today's (rehash at login)."""
    return _HASHER.check_needs_rehash(password_hash)
