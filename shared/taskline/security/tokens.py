"""Access tokens (HS256 JWTs, algorithm pinned, every claim required) and refresh tokens.

Verifying an access token needs no database round trip: tokens are short-lived and
stateless, and the signing keys come from `secret_store` (JWT_SECRET and JWT_PREVIOUS_SECRETS
locally, the secret at JWT_SECRET_ARN in AWS). Keys are identified by `kid` so they can
rotate: the current key signs, previous keys still verify until removed. Each access token
names its sign-in (`sid`), so routes that read the account anyway can also check, in the same
query, that the sign-in has not ended.

Refresh tokens are opaque random strings; the database keeps only their SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

import jwt

from taskline.errors import AuthenticationRequired
from taskline.secret_store import jwt_signing_secrets
from taskline.settings import get_settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud", "jti", "sid"]
MAX_ID = 2**63 - 1  # ids are BIGINT
REFRESH_TOKEN_BYTES = 32  # 256 bits of entropy: guessing one is hopeless, so SHA-256 suffices
# Longer than any token this API issues (access tokens are about 400 characters, refresh
# tokens 43): longer text is an unknown token, decided without parsing or hashing it all.
MAX_TOKEN_CHARS = 4096


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
    sign_in_id: uuid.UUID
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
def _keyring(values: tuple[str, ...]) -> tuple[SigningKey, ...]:
    return tuple(SigningKey(key_id(raw), raw) for raw in (value.encode() for value in values))


def sign_jwt(user_id: int, audience: str, ttl_seconds: int, issued_at: int, **claims: str) -> str:
    """A JWT of ours for `user_id`: the registered claims every one carries (a unique `jti`),
    then `claims`, signed with the current key and naming it (`kid`)."""
    key = signing_keys()[0]
    payload = {
        "sub": str(user_id),
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "iss": get_settings().jwt_issuer,
        "aud": audience,
        "jti": uuid.uuid4().hex,
        **claims,
    }
    return jwt.encode(payload, key.secret, algorithm=ALGORITHM, headers={"kid": key.kid})


class LinkClaims(NamedTuple):
    user_id: int
    issued_at: int  # seconds since the epoch
    claims: dict[str, Any]


def verify_link_jwt(token: str, audience: str, required: list[str], max_chars: int) -> LinkClaims:
    """A sessionless JWT of ours for `audience` (the token of an emailed link): the account it
    names, when it was issued, and all its claims. Raises jwt.ExpiredSignatureError when it has
    expired, any other jwt.PyJWTError when it is not one of ours for that audience (forged,
    malformed, unknown key, another kind of token, one carrying a sign-in)."""
    settings = get_settings()
    if not token or len(token) > max_chars:
        raise jwt.InvalidTokenError("not a link token")
    header = jwt.get_unverified_header(token)
    key = next((k for k in signing_keys() if k.kid == header.get("kid")), None)
    if key is None:
        raise jwt.InvalidTokenError("unknown key")
    claims = jwt.decode(
        token,
        key.secret,
        algorithms=[ALGORITHM],
        audience=audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway_seconds,
        options={"require": required},
    )
    subject, issued = claims["sub"], claims["iat"]
    if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
        raise jwt.InvalidTokenError("bad subject")
    if not 0 < int(subject) <= MAX_ID or not isinstance(issued, int) or "sid" in claims:
        raise jwt.InvalidTokenError("bad subject, issue time or a sign-in")
    return LinkClaims(int(subject), issued, claims)


def issue_access_token(user_id: int, sign_in_id: uuid.UUID) -> AccessToken:
    settings = get_settings()
    ttl = settings.access_token_ttl_seconds
    token = sign_jwt(user_id, settings.jwt_audience, ttl, int(time.time()), sid=str(sign_in_id))
    return AccessToken(token=token, expires_in=ttl)


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
    subject, token_id, sid = claims["sub"], claims["jti"], claims["sid"]
    if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
        raise AuthenticationRequired("The token is invalid.")
    if int(subject) > MAX_ID or not isinstance(token_id, str):
        raise AuthenticationRequired("The token is invalid.")
    try:
        sign_in_id = uuid.UUID(sid) if isinstance(sid, str) else None
    except ValueError:
        sign_in_id = None
    if sign_in_id is None:
        raise AuthenticationRequired("The token is invalid.")
    return VerifiedToken(
        user_id=int(subject),
        sign_in_id=sign_in_id,
        token_id=token_id,
        expires_at=int(claims["exp"]),
    )


def reset_caches() -> None:
    """Forget the cached keyrings and verified tokens (tests that change the key settings).

    Nothing needs it in a running container, after a SnapStart restore included: a keyring is
    cached by its keys' values and a verified token by the token, the keys and the expected
    claims, so new keys or settings never meet a stale entry, and expiry is checked on every
    use; the snapshot is taken before any request fills either cache.
    """
    _keyring.cache_clear()
    _verified.cache_clear()


def could_be_ours(token: str) -> bool:
    """False for text no token of ours can be: too long, or not encodable as UTF-8."""
    if len(token) > MAX_TOKEN_CHARS:
        return False
    try:
        token.encode()
    except UnicodeEncodeError:
        return False
    return True


def looks_like_jwt(token: str) -> bool:
    """JWTs have three dot-separated parts; refresh tokens (URL-safe base64) have no dots."""
    return token.count(".") == 2


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def refresh_token_hash(token: str) -> bytes:
    """What the database stores and looks up. A fast hash is right for 256-bit random tokens:
    nothing can be brute-forced, and a stolen table yields no usable token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
