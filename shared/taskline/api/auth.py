"""Bearer authentication for protected routes (RFC 6750)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from taskline import db
from taskline.errors import AuthenticationRequired
from taskline.security.tokens import VerifiedToken, verify_access_token

# Either scheme works: a pasted bearer token, or Swagger UI's OAuth2 password flow.
BEARER_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"oauth2": []}]
MAX_TOKEN_CHARS = 4096
# Paths of account-level state: a route under one must be declared `SignedIn.LIVE`.
ACCOUNT_PATH_PREFIX = "/users/me"


class SignedIn(Enum):
    """What a route asks of the caller's bearer token (declared once per `Routes` builder)."""

    # A genuine, unexpired access token, checked without the database (the task routes: an
    # ended sign-in's token runs out within ACCESS_TOKEN_TTL_SECONDS there, docs/security.md).
    TOKEN = "token"
    # ...whose sign-in is also still live: each database unit of work of the request checks
    # that first, inside it (sign_in_service.live_sign_in_check). For account-level state
    # (/users/me/...).
    LIVE = "live"


# The handlers of routes declared `SignedIn.LIVE` (the resolver looks up the called route's).
_LIVE_SIGN_IN_HANDLERS: set[Callable[..., Any]] = set()


def require_live_sign_in(handler: Callable[..., Any]) -> None:
    _LIVE_SIGN_IN_HANDLERS.add(handler)


def requires_live_sign_in(handler: Callable[..., Any]) -> bool:
    return handler in _LIVE_SIGN_IN_HANDLERS


def authenticate(app: APIGatewayHttpResolver, handler: Callable[..., Any]) -> None:
    """Authenticate a protected route's caller before its input is read: the verified token
    goes to `app.context["token"]`, and for a `SignedIn.LIVE` route each database unit of work
    of this request first checks (and, in a transaction, holds) the token's sign-in."""
    token = authenticated_token(app)
    app.context["token"] = token
    if requires_live_sign_in(handler):
        # Here, not at import: the task functions never need the sign-in service.
        from taskline.services.sign_in_service import live_sign_in_check

        db.check_every_unit_of_work(live_sign_in_check(token))


def authenticated_token(app: APIGatewayHttpResolver) -> VerifiedToken:
    """The caller's verified token from `Authorization: Bearer <jwt>`; no database round trip."""
    header = app.current_event.headers.get("authorization") or ""
    scheme, _, token = header.strip().partition(" ")
    if not header:
        raise AuthenticationRequired(token_presented=False)
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise AuthenticationRequired("Send the token as 'Authorization: Bearer <token>'.")
    return verify_access_token(token)


def current_user_id(app: APIGatewayHttpResolver) -> int:
    """The user the resolver authenticated for this request (routes declared with `security`)."""
    return current_token(app).user_id


def current_token(app: APIGatewayHttpResolver) -> VerifiedToken:
    """The verified access token of this request (user, session) for routes with `security`."""
    token: VerifiedToken = app.context["token"]
    return token


def source_ip(app: APIGatewayHttpResolver) -> str:
    """The client's address as API Gateway saw it (requestContext.http.sourceIp)."""
    return app.current_event.request_context.http.source_ip or ""
