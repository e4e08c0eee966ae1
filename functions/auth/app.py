"""Accounts, tokens and sessions: POST /users, POST /token, POST /token/revoke, /users/me."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ValidationError

from taskline import snapstart
from taskline.api.auth import BEARER_SECURITY, current_token, source_ip
from taskline.api.resolver import FORM, JSON, TasklineResolver, lambda_entry_point, media_type
from taskline.errors import InvalidTokenRequest, MalformedBody, UnsupportedGrantType
from taskline.schemas import (
    AccountDeletion,
    PasswordChange,
    PasswordGrant,
    RefreshGrant,
    TokenOut,
    TokenRevocation,
    UserCreate,
    UserOut,
)
from taskline.services import accounts, sessions

logger = Logger()
metrics = Metrics()
# SnapStart: warm up before the snapshot, reconnect and reseed after a restore.
snapstart.register_hooks()
app = TasklineResolver()
app.accepts("POST", "/token", FORM, JSON)
app.accepts("POST", "/token/revoke", FORM, JSON)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The parameters the token endpoints read from a form; every other one is ignored.
FORM_PARAMETERS = frozenset(
    (*PasswordGrant.model_fields, *RefreshGrant.model_fields, *TokenRevocation.model_fields)
)


@app.post("/users", status_code=201, tags=["Accounts"], summary="Sign up")
def sign_up(user: Annotated[UserCreate, Body()]) -> Response[UserOut]:
    created = accounts.register(user)
    metrics.add_metric(name="UserSignedUp", unit=MetricUnit.Count, value=1)
    return Response(status_code=201, content_type=JSON, body=created)


@app.post(
    "/token",
    tags=["Sessions"],
    summary="Get tokens (OAuth2 password or refresh_token grant)",
)
def token() -> Response[TokenOut]:
    issued = sessions.issue_token(_grant(), source_ip(app))
    return Response(status_code=200, content_type=JSON, body=issued, headers=NO_STORE)


@app.post("/token/revoke", tags=["Sessions"], summary="Revoke a token (RFC 7009)")
def revoke_token() -> Response[None]:
    sessions.revoke(_parse(TokenRevocation, _fields()))
    return Response(status_code=200, content_type=None, body=None, headers=NO_STORE)


@app.get("/users/me", tags=["Accounts"], summary="Who am I", security=BEARER_SECURITY)
def me() -> UserOut:
    return accounts.profile(current_token(app))


@app.post(
    "/users/me/logout-all",
    status_code=204,
    tags=["Sessions"],
    summary="End every session of my account",
    security=BEARER_SECURITY,
)
def logout_all() -> Response[None]:
    sessions.logout_all(current_token(app))
    return Response(status_code=204, content_type=None, body=None)


@app.put(
    "/users/me/password",
    status_code=204,
    tags=["Accounts"],
    summary="Change my password (ends my other sessions)",
    security=BEARER_SECURITY,
)
def change_password(change: Annotated[PasswordChange, Body()]) -> Response[None]:
    accounts.change_password(current_token(app), change, source_ip(app))
    return Response(status_code=204, content_type=None, body=None)


@app.delete(
    "/users/me",
    status_code=204,
    tags=["Accounts"],
    summary="Delete my account, tasks and sessions",
    security=BEARER_SECURITY,
)
def delete_me(confirmation: Annotated[AccountDeletion, Body()]) -> Response[None]:
    accounts.delete_account(current_token(app), confirmation, source_ip(app))
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
