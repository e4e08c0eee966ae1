"""POST /users, POST /token and GET /users/me through the local API Gateway."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

import bcrypt
import jwt
import pytest
from sqlalchemy import Engine, text

from localdev.gateway import GatewayResponse
from tests.support.api import ApiClient, assert_problem
from tests.support.environment import TEST_JWT_SECRET

PASSWORD = "correct horse battery"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def sign_up(client: ApiClient, email: str, password: str = PASSWORD) -> GatewayResponse:
    return client.post("/users", json_body={"email": email, "password": password})


def form_token(client: ApiClient, fields: dict[str, str]) -> GatewayResponse:
    return client.post("/token", body=urlencode(fields), headers=FORM)


def assert_oauth_error(response: GatewayResponse, error: str) -> dict[str, Any]:
    assert response.status == 400, response.body
    assert response.header("Content-Type") == "application/json"
    assert response.header("Cache-Control") == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    return body


# Sign-up


def test_sign_up(client: ApiClient, admin_engine: Engine) -> None:
    response = sign_up(client, "ann@example.com")
    assert response.status == 201
    assert response.header("Content-Type") == "application/json"
    body = response.json()
    assert set(body) == {"id", "email", "created_at"}
    assert isinstance(body["id"], int)
    assert body["id"] > 0
    assert body["email"] == "ann@example.com"
    assert RFC3339_UTC.match(body["created_at"])
    with admin_engine.connect() as connection:
        stored = connection.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored != PASSWORD
    assert bcrypt.checkpw(PASSWORD.encode(), stored.encode())


def test_sign_up_never_echoes_the_password(client: ApiClient) -> None:
    response = sign_up(client, "ann@example.com", "my secret password")
    assert b"my secret password" not in response.body
    assert b"password" not in response.body


@pytest.mark.parametrize("second", ["ann@example.com", "ANN@EXAMPLE.COM", "Ann@Example.Com"])
def test_duplicate_email_any_case_conflicts(
    client: ApiClient, admin_engine: Engine, second: str
) -> None:
    assert sign_up(client, "Ann@example.com").status == 201
    body = assert_problem(sign_up(client, second), 409)
    assert "already" in body["detail"]
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() == 1


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@",
        "@example.com",
        "a b@example.com",
        "",
        "a@example.com\x00",
        "a" * 321 + "@example.com",
        None,
        42,
    ],
    ids=repr,
)
def test_invalid_email(client: ApiClient, email: object) -> None:
    response = client.post("/users", json_body={"email": email, "password": PASSWORD})
    body = assert_problem(response, 422)
    assert any(error["loc"] == ["body", "email"] for error in body["errors"])


@pytest.mark.parametrize(
    "password",
    [
        "",
        "1234567",  # 7 characters
        "😀" * 7,  # 7 characters, 28 bytes
        "x" * 73,  # 73 bytes
        "é" * 37,  # 37 characters, 74 bytes
        "😀" * 19,  # 19 characters, 76 bytes
        "x" * 10_000,
    ],
    ids=lambda p: f"{len(p)}chars-{len(p.encode())}bytes",
)
def test_password_length_rules(client: ApiClient, password: str, admin_engine: Engine) -> None:
    response = sign_up(client, "ann@example.com", password)
    body = assert_problem(response, 422)
    assert any(error["loc"] == ["body", "password"] for error in body["errors"])
    if password:
        assert password not in json.loads(response.body.decode()).__repr__()
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() == 0


@pytest.mark.parametrize(
    "password",
    ["12345678", "x" * 72, "é" * 36, "😀" * 18, "pass word\twith\nspace"],
    ids=lambda p: f"{len(p)}chars-{len(p.encode())}bytes",
)
def test_password_limits_are_inclusive_and_the_password_works(
    client: ApiClient, password: str
) -> None:
    assert sign_up(client, "ann@example.com", password).status == 201
    response = form_token(client, {"username": "ann@example.com", "password": password})
    assert response.status == 200, response.body


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ann@example.com", "password": PASSWORD, "id": 5},
        {"email": "ann@example.com", "password": PASSWORD, "is_admin": True},
        {"email": "ann@example.com"},
        {"password": PASSWORD},
        {},
        [],
        "ann@example.com",
        None,
    ],
    ids=repr,
)
def test_malformed_sign_up_bodies(client: ApiClient, body: object) -> None:
    assert_problem(client.post("/users", body=json.dumps(body), headers=JSON), 422)


# Tokens


@pytest.fixture
def ann(client: ApiClient) -> str:
    assert sign_up(client, "Ann@Example.com").status == 201
    return "Ann@Example.com"


def _assert_token(response: GatewayResponse) -> str:
    assert response.status == 200, response.body
    assert response.header("Cache-Control") == "no-store"
    assert response.header("Content-Type") == "application/json"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900  # 15 minutes by default; the refresh token renews it
    token: str = body["access_token"]
    claims = jwt.decode(
        token, TEST_JWT_SECRET, algorithms=["HS256"], audience="taskline-api", issuer="taskline"
    )
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    # The refresh token is opaque (no dots, so never mistaken for a JWT) and unguessable.
    refresh = body["refresh_token"]
    assert isinstance(refresh, str)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", refresh), refresh
    return token


def test_token_from_the_oauth2_form(client: ApiClient, ann: str) -> None:
    fields = {"grant_type": "password", "username": ann, "password": PASSWORD}
    _assert_token(form_token(client, fields))


def test_token_form_without_grant_type(client: ApiClient, ann: str) -> None:
    _assert_token(form_token(client, {"username": ann, "password": PASSWORD}))


def test_token_form_ignores_scope_and_client_fields(client: ApiClient, ann: str) -> None:
    fields = {"username": ann, "password": PASSWORD, "scope": "", "client_id": "swagger"}
    _assert_token(form_token(client, fields))


def test_token_from_json(client: ApiClient, ann: str) -> None:
    response = client.post("/token", json_body={"email": ann, "password": PASSWORD})
    _assert_token(response)


def test_token_form_with_charset(client: ApiClient, ann: str) -> None:
    response = client.post(
        "/token",
        body=urlencode({"username": ann, "password": PASSWORD}),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
    )
    _assert_token(response)


@pytest.mark.parametrize("email", ["ann@example.com", "ANN@EXAMPLE.COM", "Ann@Example.com"])
def test_login_email_is_case_insensitive(client: ApiClient, ann: str, email: str) -> None:
    _assert_token(form_token(client, {"username": email, "password": PASSWORD}))


def test_non_ascii_email_logs_in_as_typed(client: ApiClient) -> None:
    """The database and Python must agree on what "lower case" means."""
    email = "İlkay@example.com"
    assert sign_up(client, email).status == 201
    _assert_token(form_token(client, {"username": email, "password": PASSWORD}))
    assert_problem(sign_up(client, email), 409)


def test_token_identifies_the_user(client: ApiClient, ann: str) -> None:
    token = _assert_token(form_token(client, {"username": ann, "password": PASSWORD}))
    me = client.get("/users/me", token=token)
    assert me.status == 200
    body = me.json()
    assert set(body) == {"id", "email", "created_at"}
    assert body["email"] == "Ann@example.com"  # the domain part is normalised to lower case
    assert RFC3339_UTC.match(body["created_at"])
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == str(body["id"])


def test_unsupported_grant_type(client: ApiClient, ann: str) -> None:
    fields = {"grant_type": "client_credentials", "username": ann, "password": PASSWORD}
    assert_oauth_error(form_token(client, fields), "unsupported_grant_type")
    json_body = {"grant_type": "authorization_code", "email": ann, "password": PASSWORD}
    assert_oauth_error(client.post("/token", json_body=json_body), "unsupported_grant_type")
    # refresh_token is a supported grant now: without its refresh_token it is malformed.
    json_body = {"grant_type": "refresh_token", "email": ann, "password": PASSWORD}
    assert_oauth_error(client.post("/token", json_body=json_body), "invalid_request")


@pytest.mark.parametrize(
    "fields",
    [
        {"username": "ann@example.com"},
        {"password": PASSWORD},
        {},
        {"username": "", "password": PASSWORD},
        {"username": "ann@example.com", "password": ""},
    ],
    ids=repr,
)
def test_missing_form_fields(client: ApiClient, ann: str, fields: dict[str, str]) -> None:
    assert_oauth_error(form_token(client, fields), "invalid_request")


def test_repeated_form_fields(client: ApiClient, ann: str) -> None:
    body = f"username={ann}&password=a&password={PASSWORD.replace(' ', '+')}"
    assert_oauth_error(client.post("/token", body=body, headers=FORM), "invalid_request")


@pytest.mark.parametrize(
    "body",
    ['{"email": "ann@example.com"}', "[]", '"x"', "null", "{}", '{"email": 5, "password": 6}'],
)
def test_missing_json_fields(client: ApiClient, ann: str, body: str) -> None:
    assert_oauth_error(client.post("/token", body=body, headers=JSON), "invalid_request")


@pytest.mark.parametrize(
    "body", ["{bad json", '{"email": NaN}', "[" * 20_000, "\ufeff{}"], ids=lambda b: b[:12]
)
def test_malformed_json_token_request(client: ApiClient, ann: str, body: str) -> None:
    """A body that cannot be read at all is the client's error, never a 500: problem+json
    400, as on every route (the transport-level rule, like 413 and 415 here); only a readable
    grant gets RFC 6749's invalid_request."""
    response = client.post("/token", body=body, headers=JSON)
    problem = assert_problem(response, 400)
    assert problem["type"] == "urn:taskline:problem:malformed-body"


def test_token_without_a_body(client: ApiClient) -> None:
    assert_oauth_error(client.post("/token", headers=FORM), "invalid_request")
    assert_oauth_error(client.post("/token"), "invalid_request")


def test_token_endpoint_refuses_other_media_types(client: ApiClient, ann: str) -> None:
    response = client.post("/token", body=f"username={ann}", headers={"Content-Type": "text/plain"})
    assert_problem(response, 415)


FAILED_LOGINS = {
    "wrong password": ("Ann@Example.com", "wrong password!"),
    "unknown email": ("nobody@example.com", PASSWORD),
    "over-long password (73 bytes)": ("Ann@Example.com", PASSWORD + "x" * 60),
    "over-long password (multibyte)": ("Ann@Example.com", "é" * 40),
    "very long password": ("Ann@Example.com", "x" * 5000),
    "very long email": ("x" * 400 + "@example.com", PASSWORD),
    "NUL in email": ("ann\x00@example.com", PASSWORD),
    "NUL in password": ("Ann@Example.com", "correct\x00horse"),
    "unknown email, over-long password": ("nobody@example.com", "x" * 100),
}


@pytest.mark.parametrize("case", FAILED_LOGINS, ids=str)
def test_failed_logins_look_and_cost_the_same(
    client: ApiClient, ann: str, checkpw_calls: list[bytes], case: str
) -> None:
    email, password = FAILED_LOGINS[case]
    expected = {
        "error": "invalid_grant",
        "error_description": "The email or password is incorrect.",
    }
    for response in (
        form_token(client, {"grant_type": "password", "username": email, "password": password}),
        client.post("/token", json_body={"email": email, "password": password}),
    ):
        assert assert_oauth_error(response, "invalid_grant") == expected
        assert response.headers == [
            ("Cache-Control", "no-store"),
            ("Pragma", "no-cache"),
            ("Content-Type", "application/json"),
        ]
    assert len(checkpw_calls) == 2  # one bcrypt check per attempt, whatever failed


def test_successful_login_costs_one_bcrypt_check(
    client: ApiClient, ann: str, checkpw_calls: list[bytes]
) -> None:
    _assert_token(form_token(client, {"username": ann, "password": PASSWORD}))
    assert len(checkpw_calls) == 1


# Who am I


def test_me_needs_a_token(client: ApiClient) -> None:
    response = client.get("/users/me")
    assert_problem(response, 401)
    assert response.header("WWW-Authenticate") is not None


def test_me_is_the_callers_account(user: ApiClient, other_user: ApiClient) -> None:
    mine, theirs = user.get("/users/me").json(), other_user.get("/users/me").json()
    assert mine["id"] != theirs["id"]
    assert mine["email"] != theirs["email"]
