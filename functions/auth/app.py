"""Accounts, tokens and sessions: POST /users, POST /token, POST /token/revoke, /users/me."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
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
    text,
)
from taskline.api.function import http_function
from taskline.api.links import public_base_url
from taskline.api.pages import page
from taskline.api.resolver import FORM, JSON, lambda_entry_point, media_type
from taskline.errors import InvalidTokenRequest, MalformedBody, UnsupportedGrantType
from taskline.schemas import (
    EXAMPLE_EMAIL,
    EXAMPLE_PASSWORD,
    AccountDeletion,
    PasswordChange,
    PasswordGrant,
    ProfileOut,
    RefreshGrant,
    TokenOut,
    TokenRevocation,
    UserCreate,
    UserOut,
)
from taskline.services import account_service, email_verification_service, sign_in_service

app, logger, metrics = http_function()
app.accepts("POST", "/token", FORM, JSON)
app.accepts("POST", "/token/revoke", FORM, JSON)
# The confirmation page's button posts a form; the body is not read.
app.accepts("POST", "/verify-email/<token>", FORM, JSON)

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
    "Unicode and lower case) and compared case-insensitively; addresses Taskline cannot mail "
    "safely are 422 (quoted or non-ASCII local parts, RFC 2047 encoded words, control "
    "characters). Sends a verification link to the address (written to the log when no "
    "sender is configured); no reminder email goes to it until its owner follows the link.",
    errors={409: problem("The email is already registered.")},
    invalid=True,
    body="json",
)
def sign_up(
    user: Annotated[UserCreate, example_body(UserCreate)],
) -> Response[UserOut]:
    created = account_service.register(user, public_base_url(app.current_event))
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
    {200: returns("The caller's account.", ProfileOut)},
)
def me() -> ProfileOut:
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


@my_account.route(
    "POST",
    "/users/me/email-verification",
    "requestEmailVerification",
    "Email me a new verification link",
    {204: returns("Sent (or, without a sender configured, written to the log).")},
    description="Sends a new verification link to the account's address, verified or not: "
    "verifying again is how an owner lifts a recipient's unsubscribe, a bounce or a "
    "complaint. At most EMAIL_VERIFICATION_EMAILS_PER_WINDOW emails (sign-up's included) per "
    "EMAIL_VERIFICATION_WINDOW_SECONDS per account (default 5 per hour). 503 with "
    "Retry-After when SES cannot send it now.",
    errors={
        429: problem("Too many verification emails; wait Retry-After seconds.", RETRY_AFTER),
    },
)
def request_email_verification() -> Response[None]:
    email_verification_service.request_link(current_token(app), public_base_url(app.current_event))
    metrics.add_metric(name="VerificationEmailRequested", unit=MetricUnit.Count, value=1)
    return Response(status_code=204, content_type=None, body=None)


VerificationToken = Annotated[
    str, Path(min_length=1, description="The signed token of the verification email's link.")
]
HTML_PAGE = text("text/html")
VERIFICATION_LINK_ERRORS = {
    404: problem("Not a link we issued (or the account no longer exists)."),
    410: problem(
        "Expired, or superseded: the address changed, or stopped taking email, since it was "
        "sent. Request a new link."
    ),
}
links = Routes(app, "Accounts")


@links.route(
    "GET",
    "/verify-email/<token>",
    "getEmailVerificationPage",
    "Email verification confirmation page",
    {200: returns("The page: a button that POSTs to the same URL.", content=text("text/html"))},
    description="The page a verification email's link opens. Opening it changes nothing (link "
    "scanners open links too); its button POSTs to the same URL. No bearer token: the signed "
    "link is the credential.",
    errors=VERIFICATION_LINK_ERRORS,
    invalid=True,
)
def email_verification_page(token: VerificationToken) -> Response[str]:
    state = email_verification_service.check_link(token)
    if state is email_verification_service.LinkState.ALREADY_VERIFIED:
        return page("Address already confirmed", "This address is confirmed; nothing to do.")
    return page(
        "Confirm your email address?",
        "Press the button to confirm that this address is yours. Taskline then emails your "
        "reminders to it.",
        button="Confirm my address",
    )


@links.route(
    "POST",
    "/verify-email/<token>",
    "verifyEmail",
    "Verify my email address",
    {
        200: returns(
            "Verified (or already verified by this link): a page.", content=text("text/html")
        )
    },
    description="Marks the address verified and lifts its suppression (a recipient's "
    "unsubscribe, a bounce or a complaint recorded before the link was sent). Idempotent: "
    "following a link again after it verified the address changes nothing and answers 200. "
    "Any body is ignored. No bearer token: the signed link is the credential.",
    errors=VERIFICATION_LINK_ERRORS,
    invalid=True,
)
def verify_email(token: VerificationToken) -> Response[str]:
    state = email_verification_service.verify(token)
    if state is email_verification_service.LinkState.PENDING:
        metrics.add_metric(name="EmailVerified", unit=MetricUnit.Count, value=1)
    return page("Address confirmed", "Thank you: Taskline may now email your reminders here.")


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
