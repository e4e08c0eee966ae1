"""Email verification links: signed, expiring, usable without signing in (the link's recipient
may read mail on another device).

The token is a JWT signed with the API's signing keys (HS256, `kid`, rotation as for access
tokens) for its own audience (EMAIL_VERIFICATION_AUDIENCE) and without a session, so it is
neither an access token nor an unsubscribe link, and they are not verification links. It names
the address it was sent to (`email`, lower case): a link for an address the account no longer
has verifies nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from taskline.errors import VerificationLinkExpired, VerificationLinkInvalid
from taskline.security.tokens import sign_jwt, verify_link_jwt
from taskline.settings import get_settings

REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud", "jti", "email"]
MAX_TOKEN_CHARS = 2048


@dataclass(frozen=True)
class VerificationClaim:
    user_id: int
    email: str  # lower case
    issued_at: int  # seconds since the epoch


def issue_verification_token(user_id: int, email: str, now: float | None = None) -> str:
    settings = get_settings()
    issued = int(time.time() if now is None else now)
    return sign_jwt(
        user_id,
        settings.email_verification_audience,
        settings.email_verification_token_ttl_seconds,
        issued,
        email=email.lower(),
    )


def verify_verification_token(token: str) -> VerificationClaim:
    """What the link claims; VerificationLinkInvalid (forged, malformed, unknown key, another
    kind of token) or VerificationLinkExpired."""
    try:
        link = verify_link_jwt(
            token, get_settings().email_verification_audience, REQUIRED_CLAIMS, MAX_TOKEN_CHARS
        )
    except jwt.ExpiredSignatureError as error:
        raise VerificationLinkExpired from error
    except jwt.PyJWTError as error:
        raise VerificationLinkInvalid from error
    email = link.claims["email"]
    if not isinstance(email, str) or not email:
        raise VerificationLinkInvalid
    return VerificationClaim(user_id=link.user_id, email=email, issued_at=link.issued_at)
