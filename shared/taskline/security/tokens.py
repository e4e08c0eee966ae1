"""Issuing and verifying access tokens: HS256 JWTs, algorithm pinned, every claim required.

Verification needs no database round trip: tokens are short-lived and stateless, and the
signing keys come from the settings. Keys are identified by `kid` so they can rotate:
the current key signs, previous keys (JWT_PREVIOUS_SECRETS) still verify until removed.
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


@lru_cache(maxsize=1)
def signing_keys() -> tuple[SigningKey, ...]:
    """The current key first, then the previous ones that still verify."""
    settings = get_settings()
    secrets = [settings.jwt_secret, *settings.jwt_previous_secrets]
    return tuple(
        SigningKey(key_id(raw), raw)
        for raw in (secret.get_secret_value().encode() for secret in secrets)
    )


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
    """The token's user, or AuthenticationRequired whatever is wrong with it.

    A client sends the same token with every request until it expires, so a container checks
    each token's signature and claims once: what is left to check on later requests is its
    expiry. Only tokens that passed are remembered, and the keys and the expected issuer,
    audience and leeway are part of what they are remembered by.
    """
    settings = get_settings()
    verified = _verified(
        token,
        signing_keys(),
        settings.jwt_audience,
        settings.jwt_issuer,
        settings.jwt_leeway_seconds,
    )
    if verified.expires_at <= time.time() - settings.jwt_leeway_seconds:  # as PyJWT decides
        raise AuthenticationRequired("The token has expired.")
    return verified


@lru_cache(maxsize=1024)
def _verified(
    token: str, keys: tuple[SigningKey, ...], audience: str, issuer: str, leeway: int
) -> VerifiedToken:
    try:
        header = jwt.get_unverified_header(token)
        key = next((k for k in keys if k.kid == header.get("kid")), None)
        if key is None:
            raise AuthenticationRequired("The token was signed with an unknown key.")
        claims = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
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
