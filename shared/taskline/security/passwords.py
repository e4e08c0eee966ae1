"""bcrypt hashing with a configurable work factor, and constant-cost failures."""

from __future__ import annotations

from functools import lru_cache

import bcrypt

from taskline.domain import MAX_PASSWORD_BYTES
from taskline.settings import get_settings


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(get_settings().bcrypt_rounds)).decode()


@lru_cache(maxsize=1)
def _decoy_hash() -> bytes:
    # Checked when there is no real hash: "no such account" costs what "wrong password" does.
    return bcrypt.hashpw(b"taskline-decoy-password", bcrypt.gensalt(get_settings().bcrypt_rounds))


def reset_decoy_cache() -> None:
    """Forget the decoy hash, so the next one uses the current BCRYPT_ROUNDS (tests that change
    it). A SnapStart restore needs no reset: the decoy is a hash of a public constant, secret to
    no one, and the snapshot is taken before any request makes it."""
    _decoy_hash.cache_clear()


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when `password` matches; always spends one bcrypt check, whatever the input."""
    candidate = password.encode()
    usable = len(candidate) <= MAX_PASSWORD_BYTES and password_hash is not None
    target = password_hash.encode() if usable and password_hash is not None else _decoy_hash()
    matched = bcrypt.checkpw(candidate[:MAX_PASSWORD_BYTES], target)
    return matched and usable
