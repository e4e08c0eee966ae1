"""Calling the API as a client would: requests through the local API Gateway, and the checks and
tokens the tests share."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import jwt

from localdev.gateway import GatewayResponse, LocalGateway
from tests.support.environment import TEST_JWT_SECRET

# Every response header the suite sees (tests/http/test_cors.py checks each one is readable by a
# page on another origin), recorded at the local gateway by the session fixture in conftest.py.
SEEN_RESPONSE_HEADERS: dict[str, str] = {}

# The fields of a task as the contract returns it (the API's responses and the OpenAPI document).
TASK_FIELDS = {
    "id",
    "description",
    "category",
    "deadline",
    "status",
    "created_at",
    "updated_at",
    "remind_before",  # issue 15: the per-task reminder (null: the account's lead time)
    "list_id",  # issue 20: the shared list (null: a personal task)
    "assignee_id",  # issue 20: the member it is assigned to
    "created_by",  # issue 20: read-only, who created it
}  # lower-cased name -> the first route that sent it


class ApiClient:
    """Sends requests through the local API Gateway, so each call is a real HTTP API 2.0 event
    delivered to the function that owns the route."""

    def __init__(self, gateway: LocalGateway, token: str | None = None) -> None:
        self.gateway = gateway
        self.token = token

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | str | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
        source_ip: str = "127.0.0.1",
    ) -> GatewayResponse:
        sent = dict(headers or {})
        raw = b""
        if json_body is not None:
            raw = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        elif body is not None:
            raw = body.encode() if isinstance(body, str) else body
        bearer = token if token is not None else self.token
        if bearer and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {bearer}"
        path, _, raw_query = path.partition("?")
        if query:
            raw_query = urlencode(query)
        return self.gateway.request(
            method, path, raw_query, list(sent.items()), raw, source_ip=source_ip
        )

    def get(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> GatewayResponse:
        return self.request("DELETE", path, **kwargs)

    def sign_up(self, email: str | None = None, password: str = "correct horse battery") -> str:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = self.post("/users", json_body={"email": email, "password": password})
        assert response.status == 201, response.body
        return email

    def login(self, email: str, password: str = "correct horse battery") -> str:
        token: str = self.login_pair(email, password)["access_token"]
        return token

    def login_pair(self, email: str, password: str = "correct horse battery") -> dict[str, Any]:
        """The whole token response of a password grant (access and refresh token)."""
        response = self.post(
            "/token",
            body=urlencode({"grant_type": "password", "username": email, "password": password}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status == 200, response.body
        pair: dict[str, Any] = response.json()
        return pair

    def refresh(self, refresh_token: str) -> GatewayResponse:
        return self.post(
            "/token",
            body=urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )


def task_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": "Write the quarterly report",
        "category": "work",
        "deadline": "2030-01-15T09:00:00Z",
    }
    body.update(overrides)
    return body


def assert_problem(response: GatewayResponse, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status == status, response.body
    assert response.header("Content-Type") == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert all(isinstance(body[key], str) and body[key] for key in ("type", "title", "detail"))
    if status == 422:
        assert body["errors"], body
        for error in body["errors"]:
            assert set(error) == {"loc", "msg", "type"}, error
            assert isinstance(error["loc"], list)
            assert error["loc"]
    return body


def forge_token(
    claims: dict[str, Any],
    *,
    secret: str = TEST_JWT_SECRET,
    kid: str | None = "current",
    algorithm: str = "HS256",
) -> str:
    """A JWT signed as the caller says (kid "current" is the key the API signs with now)."""
    from taskline.security.tokens import key_id

    headers: dict[str, Any] = {}
    if kid == "current":
        headers["kid"] = key_id(secret.encode())
    elif kid is not None:
        headers["kid"] = kid
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


def valid_claims(user_id: int | str, **overrides: Any) -> dict[str, Any]:
    """The claims of a good access token for `user_id`, with any of them replaced."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "iss": "taskline",
        "aud": "taskline-api",
        "jti": uuid.uuid4().hex,
        "sid": str(uuid.uuid4()),  # a session id; only the account routes look the session up
    }
    claims.update(overrides)
    return claims


def verification_path(user_id: int, email: str, issued_at: float | None = None) -> str:
    """The path of a verification link as the sign-up email carries it."""
    from taskline.security.email_verification import issue_verification_token

    return f"/verify-email/{issue_verification_token(user_id, email, issued_at)}"


def verify_email(client: ApiClient) -> None:
    """Follow the account's verification link, as its owner does from the sign-up email."""
    me = client.get("/users/me").json()
    response = client.post(verification_path(me["id"], me["email"]), token="")
    assert response.status == 200, response.body


def user_id_of(client: ApiClient) -> int:
    me = client.get("/users/me")
    assert me.status == 200, me.body
    user_id: int = me.json()["id"]
    return user_id
