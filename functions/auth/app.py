"""Accounts and tokens: POST /users, POST /token, GET /users/me."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import ValidationError

from taskline.api.auth import BEARER_SECURITY, current_user_id
from taskline.api.resolver import FORM, JSON, TasklineResolver, lambda_entry_point, media_type
from taskline.errors import InvalidTokenRequest, UnsupportedGrantType
from taskline.schemas import PasswordGrant, TokenOut, UserCreate, UserOut
from taskline.services import accounts

logger = Logger()
metrics = Metrics()
app = TasklineResolver()
app.accepts("POST", "/token", FORM, JSON)


@app.post("/users", status_code=201, tags=["Accounts"], summary="Sign up")
def sign_up(user: Annotated[UserCreate, Body()]) -> Response[UserOut]:
    created = accounts.register(user)
    metrics.add_metric(name="UserSignedUp", unit=MetricUnit.Count, value=1)
    return Response(status_code=201, content_type=JSON, body=created)


@app.post("/token", tags=["Accounts"], summary="Get an access token (OAuth2 password grant)")
def token() -> Response[TokenOut]:
    issued = accounts.issue_token(_password_grant())
    return Response(
        status_code=200,
        content_type=JSON,
        body=issued,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


@app.get("/users/me", tags=["Accounts"], summary="Who am I", security=BEARER_SECURITY)
def me() -> UserOut:
    return accounts.profile(current_user_id(app))


def _password_grant() -> PasswordGrant:
    """The grant from an OAuth2 form (`username`) or a JSON body (`email`)."""
    event = app.current_event
    body = event.decoded_body or ""
    fields: dict[str, object]
    if media_type(event.headers.get("content-type")) == FORM:
        parsed = parse_qs(body, keep_blank_values=True)
        if any(len(values) > 1 for values in parsed.values()):
            raise InvalidTokenRequest("Each parameter may be sent only once.")
        fields = {name: values[0] for name, values in parsed.items()}
    else:
        try:
            document = event.json_body if body else None
        except json.JSONDecodeError as error:
            raise InvalidTokenRequest("The body is not valid JSON.") from error
        if not isinstance(document, dict):
            raise InvalidTokenRequest("Send a JSON object with email and password.")
        fields = {"username": document.get("email"), **document}
        fields.pop("email", None)
    if fields.get("grant_type", "password") != "password":
        raise UnsupportedGrantType
    try:
        return PasswordGrant.model_validate(fields)
    except ValidationError as error:
        missing = ", ".join(str(e["loc"][0]) for e in error.errors(include_url=False))
        raise InvalidTokenRequest(f"Missing or invalid: {missing}.") from error


lambda_handler = lambda_entry_point(app, logger, metrics)
