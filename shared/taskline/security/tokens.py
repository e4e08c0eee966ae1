"""Issuing and verifying access tokens: HS256 JWTs, algorithm pinned, every claim required.

Verification needs no database round trip: tokens are short-lived and stateless, and the
signing keys come from the settings. Keys are identified by `kid` so they can rotate:
the current key signs, previous keys (JWT_PREVIOUS_SECRETS, or `previous` in the secret at
JWT_SECRET_ARN) still verify until removed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache

import jwt

from taskline.errors import AuthenticationRequired
from taskline.secret_store import jwt_signing_secrets
from taskline.settings import get_settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud", "jti"]
MAX_ID = 2**63 - 1  # ids are BIGINT


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class VerifiedToken:
    user_id: int
    token_id: str
    expires_at: int


def key_id(secret: bytes) -> str:
    """A stable, non-reversible name for a key, so tokens say which key signed them."""
    return hmac.new(secret, b"taskline-key-id", hashlib.sha256).hexdigest()[:16]


def signing_keys() -> tuple[SigningKey, ...]:
    """The current key first, then the previous ones that still verify.

    The secrets come from `secret_store` (cached there, re-read when their cache expires, so a
    rotated key reaches warm containers); the keyring built from them is cached here.
    """
    return _keyring(tuple(secret.get_secret_value() for secret in jwt_signing_secrets()))


@lru_cache(maxsize=4)
def _keyring(secrets: tuple[str, ...]) -> tuple[SigningKey, ...]:
    return tuple(SigningKey(key_id(raw), raw) for raw in (secret.encode() for secret in secrets))


def issue_access_token(user_id: int) -> AccessToken:
    settings = get_settings()
    key = signing_keys()[0]
    now = int(time.time())
    claims = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + settings.access_token_ttl_seconds,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})
    return AccessToken(token=token, expires_in=settings.access_token_ttl_seconds)


def verify_access_token(token: str) -> VerifiedToken:
    """The token's user, or AuthenticationRequired whatever is wrong with it."""
    settings = get_settings()
    try:
        header = jwt.get_unverified_header(token)
        key = next((k for k in signing_keys() if k.kid == header.get("kid")), None)
        if key is None:
            raise AuthenticationRequired("The token was signed with an unknown key.")
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as error:
        raise AuthenticationRequired("The token has expired.") from error
    except jwt.PyJWTError as error:
        raise AuthenticationRequired("The token is invalid.") from error
    subject, token_id = claims["sub"], claims["jti"]
    if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
        raise AuthenticationRequired("The token is invalid.")
    if int(subject) > MAX_ID or not isinstance(token_id, str):
        raise AuthenticationRequired("The token is invalid.")
    return VerifiedToken(user_id=int(subject), token_id=token_id, expires_at=int(claims["exp"]))
