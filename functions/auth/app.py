"""Accounts, tokens and sessions: POST /users, POST /token, POST /token/revoke, /users/me."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

from taskline.api.auth import SignedIn, current_token, source_ip
from taskline.api.documentation import (
    NO_STORE,
    RETRY_AFTER,
    THROTTLED,
    WRONG_PASSWORD,
    RouteOptions,
    Routes,
    example_body,
    oauth_error,
    problem,
    returns,
)
from taskline.api.function import http_function
from taskline.api.resolver import FORM, JSON, lambda_entry_point, media_type
from taskline.errors import InvalidTokenRequest, MalformedBody, UnsupportedGrantType
from taskline.schemas import (
    EXAMPLE_EMAIL,
    EXAMPLE_PASSWORD,
    AccountDeletion,
    PasswordChange,
    PasswordGrant,
    RefreshGrant,
    TokenOut,
    TokenRevocation,
    UserCreate,
    UserOut,
)
from taskline.services import account_service, sign_in_service

app, logger, metrics = http_function()
app.accepts("POST", "/token", FORM, JSON)
app.accepts("POST", "/token/revoke", FORM, JSON)

NO_STORE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The parameters the token endpoints read from a form; every other one is ignored.
FORM_PARAMETERS = frozenset(
    (*PasswordGrant.model_fields, *RefreshGrant.model_fields, *TokenRevocation.model_fields)
)


def _schema(model: type[BaseModel], title: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """A token endpoint's body, from the model that parses it (so the document promises what
    the code accepts), with its fields renamed or described as `fields` says: `{"as": name}`
    renames a field, any other key is added to its schema."""
    source = model.model_json_schema()
    properties: dict[str, Any] = {}
    required = []
    for name, schema in source["properties"].items():
        changes = dict(fields.get(name, {}))
        shown = changes.pop("as", name)
        schema = {k: v for k, v in schema.items() if k != "title"} | changes
        if "const" in schema:  # a one-value enum reads better in Swagger UI and generators
            schema["enum"] = [schema.pop("const")]
        properties[shown] = schema
        if name in source.get("required", []):
            required.append(shown)
    return {"type": "object", "title": title, "required": required, "properties": properties}


_SECRET = {"format": "password"}
PASSWORD_GRANT_FORM = _schema(
    PasswordGrant,
    "PasswordGrantForm",
    username={"description": "The account's email.", "format": "email"},
    password=_SECRET,
)
REFRESH_GRANT = _schema(
    RefreshGrant,
    "RefreshTokenGrant",
    refresh_token={"description": "From the last token response; each one works once."},
)
REVOCATION = _schema(
    TokenRevocation,
    "TokenRevocation",
    token={"description": "A refresh token or an access token (any text: unknown ones get 200)."},
)
# Accepted and ignored, whatever its value (RFC 7009 section 2.1 has the server search every
# token type anyway): no type and no enum.
REVOCATION["properties"]["token_type_hint"] = {
    "examples": ["refresh_token", "access_token"],
    "description": "Optional and ignored: the kind of token is told by its shape.",
}
EXAMPLE_REFRESH_TOKEN = "qinEqv3Zk1b0fQ9m6h2Yx4Tt8pLw5sRcNdAe7uJgKoI"
# The document shows the form body only, the encoding RFC 6749 (section 4.3.2) and RFC 7009
# (section 2.1) define; the JSON body Taskline also accepts is in the description. Declaring both
# media types makes openapi-python-client (0.29.1, the current release) generate a module
# that fails at import, NameError on `Unset`, for any required body of several media types
# (openapi-generators/openapi-python-client#1451); declaring the body optional instead would
# be untrue (a missing body is 400 invalid_request).
TOKEN_BODY = {
    "required": True,
    "description": "A form (RFC 6749). The same grants are accepted as JSON: "
    '`{"email", "password"}` (with optional `"grant_type": "password"`) or '
    '`{"grant_type": "refresh_token", "refresh_token"}`.',
    "content": {
        FORM: {
            "schema": {"oneOf": [PASSWORD_GRANT_FORM, REFRESH_GRANT]},
            "examples": {
                "default": {
                    "summary": "Password grant",
                    "value": {
                        "grant_type": "password",
                        "username": EXAMPLE_EMAIL,
                        "password": EXAMPLE_PASSWORD,
                    },
                },
                "refresh": {
                    "summary": "Refresh token grant",
                    "value": {
                        "grant_type": "refresh_token",
                        "refresh_token": EXAMPLE_REFRESH_TOKEN,
                    },
                },
            },
        },
    },
}
REVOKE_BODY = {
    "required": True,
    "description": 'A form (RFC 7009); `{"token"}` as JSON is accepted too.',
    "content": {
        FORM: {
            "schema": REVOCATION,
            "examples": {"default": {"value": {"token": EXAMPLE_REFRESH_TOKEN}}},
        }
    },
}
DONE = returns("Done; no content.")


sign_up_routes = Routes(app, "Accounts")
token_routes = Routes(app, "Sessions")
my_account = Routes(app, "Accounts", signed_in=SignedIn.LIVE)
my_sessions = Routes(app, "Sessions", signed_in=SignedIn.LIVE)


@sign_up_routes.route(
    "POST",
    "/users",
    "createUser",
    "Sign up",
    {201: returns("The account was created.", UserOut)},
    description="Creates an account. Emails are normalised (Unicode NFC, the domain in "
    "Unicode and lower case) and compared case-insensitively.",
    errors={409: problem("The email is already registered.")},
    invalid=True,
    body="json",
)
def sign_up(
    user: Annotated[UserCreate, example_body(UserCreate)],
) -> Response[UserOut]:
    created = account_service.register(user)
    metrics.add_metric(name="UserSignedUp", unit=MetricUnit.Count, value=1)
    return Response(status_code=201, content_type=JSON, body=created)


@token_routes.route(
    "POST",
    "/token",
    "issueToken",
    "Get tokens (OAuth2 password or refresh_token grant)",
    {200: returns("A new access token and refresh token.", TokenOut, headers=NO_STORE)},
    description="OAuth2 token endpoint. `grant_type=password` (the default) starts a session "
    "from email and password; `grant_type=refresh_token` exchanges the session's latest refresh "
    "token for a new pair (RFC 6749 section 6). Each refresh token works once: presenting one "
    "again ends its session. Failed password checks are throttled per account and per source "
    "IP (429 with Retry-After).",
    errors={
        400: oauth_error(
            "Bad credentials, an invalid, used or expired refresh token, or a malformed grant "
            "(RFC 6749 section 5.2; a body that is not JSON at all is problem+json).",
            or_problem=True,
            headers=NO_STORE,
        ),
        429: oauth_error(
            "Too many failed password attempts for this account or from this address "
            "(`slow_down`); the same for unknown emails.",
            headers={**RETRY_AFTER, **NO_STORE},
        ),
    },
    body="own",
    request_body=TOKEN_BODY,
)
def token() -> Response[TokenOut]:
    issued = sign_in_service.issue_token(_grant(), source_ip(app))
    return Response(status_code=200, content_type=JSON, body=issued, headers=NO_STORE_HEADERS)


@token_routes.route(
    "POST",
    "/token/revoke",
    "revokeToken",
    "Revoke a token (RFC 7009)",
    {200: returns("Revoked, or nothing to revoke; empty body.", headers=NO_STORE)},
    description="RFC 7009 revocation: ends the session of a refresh token or an access token. "
    "Unknown, invalid or expired tokens, of any length, get 200 as well. Access tokens are "
    "stateless: those already issued keep working on the task routes until they expire (at "
    "most ACCESS_TOKEN_TTL_SECONDS); the account routes refuse them at once.",
    errors={
        400: oauth_error(
            "No `token`, or an empty one (invalid_request).", or_problem=True, headers=NO_STORE
        )
    },
    body="own",
    request_body=REVOKE_BODY,
)
def revoke_token() -> Response[None]:
    sign_in_service.revoke(_parse(TokenRevocation, _fields()))
    return Response(status_code=200, content_type=None, body=None, headers=NO_STORE_HEADERS)


@my_account.route(
    "GET",
    "/users/me",
    "getMe",
    "Who am I",
    {200: returns("The caller's account.", UserOut)},
)
def me() -> UserOut:
    return account_service.profile(current_token(app))


@my_sessions.route(
    "POST",
    "/users/me/logout-all",
    "logoutAll",
    "End every session of my account",
    {204: DONE},
    description="Ends every session of the account, this one included: all refresh tokens "
    "stop working, and the calendar feed URL is revoked. Access tokens already issued run "
    "out within ACCESS_TOKEN_TTL_SECONDS on the task routes; the account routes refuse them "
    "at once.",
)
def logout_all() -> Response[None]:
    sign_in_service.logout_all(current_token(app))
    return Response(status_code=204, content_type=None, body=None)


# What the routes that take the account's password answer besides their 204.
PASSWORD_CONFIRMED: RouteOptions = {
    "errors": {403: WRONG_PASSWORD, 429: THROTTLED},
    "invalid": True,
    "body": "json",
}


@my_account.route(
    "PUT",
    "/users/me/password",
    "changePassword",
    "Change my password (ends my other sessions)",
    {204: DONE},
    description="Needs the current password. Ends every other session of the account and "
    "revokes the calendar feed URL; this one goes on. Wrong passwords count towards login "
    "throttling.",
    **PASSWORD_CONFIRMED,
)
def change_password(
    change: Annotated[PasswordChange, example_body(PasswordChange)],
) -> Response[None]:
    account_service.change_password(current_token(app), change, source_ip(app))
    return Response(status_code=204, content_type=None, body=None)


@my_account.route(
    "DELETE",
    "/users/me",
    "deleteMe",
    "Delete my account, tasks and sessions",
    {204: DONE},
    description="Needs the password in the JSON body. Deletes the account with its tasks, "
    "sessions, refresh tokens and calendar feed, in one transaction.",
    **PASSWORD_CONFIRMED,
)
def delete_me(
    confirmation: Annotated[AccountDeletion, example_body(AccountDeletion)],
) -> Response[None]:
    account_service.delete_account(current_token(app), confirmation, source_ip(app))
    metrics.add_metric(name="UserDeleted", unit=MetricUnit.Count, value=1)
    return Response(status_code=204, content_type=None, body=None)


def _grant() -> PasswordGrant | RefreshGrant:
    """The grant from an OAuth2 form (`username`) or a JSON body (`email` for passwords)."""
    fields = _fields()
    grant_type = fields.get("grant_type", "password")
    if grant_type == "refresh_token":
        return _parse(RefreshGrant, fields)
    if grant_type != "password":
        raise UnsupportedGrantType
    if "email" in fields and not _is_form():
        fields = {**fields, "username": fields.pop("email")}
    return _parse(PasswordGrant, fields)


def _is_form() -> bool:
    return media_type(app.current_event.headers.get("content-type")) == FORM


def _fields() -> dict[str, Any]:
    """The token endpoints' parameters, from a form (RFC 6749) or a JSON object."""
    event = app.current_event
    body = event.decoded_body or ""
    if _is_form():
        parsed = parse_qs(body, keep_blank_values=True)
        # RFC 6749 section 3.2: the parameters defined here must not be repeated, and any
        # other (scope, client_id, ...) is ignored, repeated or not.
        if any(len(parsed.get(name, ())) > 1 for name in FORM_PARAMETERS):
            raise InvalidTokenRequest("Each parameter may be sent only once.")
        return {name: values[0] for name, values in parsed.items() if name in FORM_PARAMETERS}
    try:
        document = event.json_body if body else None
    except ValueError as error:  # the body cannot be read at all: as for every route, problem+json
        raise MalformedBody from error
    if not isinstance(document, dict):
        raise InvalidTokenRequest("Send a form or a JSON object with the parameters.")
    return dict(document)


def _parse[M: BaseModel](model: type[M], fields: dict[str, Any]) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        named = sorted({str(e["loc"][0]) for e in error.errors(include_url=False) if e["loc"]})
        raise InvalidTokenRequest(f"Missing or invalid: {', '.join(named)}.") from error


lambda_handler = lambda_entry_point(app, logger, metrics)
