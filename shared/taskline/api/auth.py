"""Bearer authentication for protected routes (RFC 6750)."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from taskline.errors import AuthenticationRequired
from taskline.security.tokens import VerifiedToken, verify_access_token

# Either scheme works: a pasted bearer token, or Swagger UI's OAuth2 password flow.
BEARER_SECURITY: list[dict[str, list[str]]] = [{"oauth2": []}, {"bearerAuth": []}]
MAX_TOKEN_CHARS = 4096


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
