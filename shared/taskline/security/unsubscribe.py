"""One-click unsubscribe links (RFC 8058): signed, expiring, usable without signing in.

The token is a JWT signed with the API's signing keys (HS256, `kid`, rotation as for access
tokens) but for another audience (UNSUBSCRIBE_AUDIENCE) and without a session: an access token
is refused here, and an unsubscribe token is refused as an access token (wrong audience, no
`sid`). It only ever switches email off for its account, and only if email has not been
switched on again since it was issued (`iat` before `email_enabled_at`: stale).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from taskline.errors import UnsubscribeLinkExpired, UnsubscribeLinkInvalid
from taskline.security.tokens import sign_jwt, verify_link_jwt
from taskline.settings import get_settings

REQUIRED_CLAIMS = ["sub", "iat", "exp", "iss", "aud", "jti"]
MAX_TOKEN_CHARS = 1024


@dataclass(frozen=True)
class UnsubscribeClaim:
    user_id: int
    issued_at: int  # seconds since the epoch


def issue_unsubscribe_token(user_id: int, now: float | None = None) -> str:
    settings = get_settings()
    issued = int(time.time() if now is None else now)
    return sign_jwt(
        user_id, settings.unsubscribe_audience, settings.unsubscribe_token_ttl_seconds, issued
    )


def verify_unsubscribe_token(token: str) -> UnsubscribeClaim:
    """The account the link is for; UnsubscribeLinkInvalid (forged, malformed, unknown key,
    another kind of token) or UnsubscribeLinkExpired."""
    try:
        link = verify_link_jwt(
            token, get_settings().unsubscribe_audience, REQUIRED_CLAIMS, MAX_TOKEN_CHARS
        )
    except jwt.ExpiredSignatureError as error:
        raise UnsubscribeLinkExpired from error
    except jwt.PyJWTError as error:
        raise UnsubscribeLinkInvalid from error
    return UnsubscribeClaim(user_id=link.user_id, issued_at=link.issued_at)
