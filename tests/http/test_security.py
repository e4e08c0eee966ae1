"""Bearer authentication (RFC 6750) on every protected route, and what responses never reveal."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from sqlalchemy import Engine, text

from localdev.gateway import GatewayResponse
from taskline.security.tokens import MAX_ID, key_id
from tests.support.api import (
    ApiClient,
    assert_problem,
    forge_token,
    task_body,
    user_id_of,
    valid_claims,
)
from tests.support.environment import TEST_JWT_SECRET

PROTECTED = [
    ("GET", "/users/me", None),
    ("GET", "/tasks", None),
    ("POST", "/tasks", task_body()),
    ("GET", "/tasks/1", None),
    ("PATCH", "/tasks/1", {"status": "Done"}),
    ("PUT", "/tasks/1", task_body(status="Done")),
    ("DELETE", "/tasks/1", None),
]
OTHER_SECRET = "an-attackers-guess-at-the-key-" + "z" * 32


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _without(claim: str) -> dict[str, Any]:
    claims = valid_claims(1)
    del claims[claim]
    return claims


def _bad_authorization_headers() -> dict[str, str | None]:
    now = int(time.time())
    good = forge_token(valid_claims(1))
    header, payload, _ = good.split(".")
    return {
        "missing header": None,
        "empty header": "",
        "basic scheme": "Basic dXNlcjpwYXNz",
        "token without scheme": good,
        "scheme only": "Bearer",
        "scheme and spaces": "Bearer    ",
        "two tokens": f"Bearer {good} {good}",
        "malformed": "Bearer not.a.jwt",
        "garbage": "Bearer %%%%",
        "oversized": "Bearer " + "a" * 5000,
        "expired beyond leeway": "Bearer "
        + forge_token(valid_claims(1, iat=now - 3600, exp=now - 120)),
        "issued in the future": "Bearer "
        + forge_token(valid_claims(1, iat=now + 3600, exp=now + 7200)),
        "wrong signature": "Bearer "
        + forge_token(valid_claims(1), secret=OTHER_SECRET, kid=key_id(TEST_JWT_SECRET.encode())),
        "signature stripped": f"Bearer {header}.{payload}.",
        "alg none": "Bearer " + forge_token(valid_claims(1), secret="", algorithm="none"),
        "alg none with kid": "Bearer "
        + _b64({"alg": "none", "typ": "JWT", "kid": key_id(TEST_JWT_SECRET.encode())})
        + "."
        + _b64(valid_claims(1))
        + ".",
        "alg HS512": "Bearer " + forge_token(valid_claims(1), algorithm="HS512"),
        "wrong issuer": "Bearer " + forge_token(valid_claims(1, iss="evil")),
        "wrong audience": "Bearer " + forge_token(valid_claims(1, aud="other-api")),
        "no sub": "Bearer " + forge_token(_without("sub")),
        "no iat": "Bearer " + forge_token(_without("iat")),
        "no exp": "Bearer " + forge_token(_without("exp")),
        "no iss": "Bearer " + forge_token(_without("iss")),
        "no aud": "Bearer " + forge_token(_without("aud")),
        "no jti": "Bearer " + forge_token(_without("jti")),
        "no sid": "Bearer " + forge_token(_without("sid")),
        "sid not a uuid": "Bearer " + forge_token(valid_claims(1, sid="session-1")),
        "no kid": "Bearer " + forge_token(valid_claims(1), kid=None),
        "unknown kid": "Bearer " + forge_token(valid_claims(1), kid="0123456789abcdef"),
        "non-numeric sub": "Bearer " + forge_token(valid_claims("admin")),
        "negative sub": "Bearer " + forge_token(valid_claims("-1")),
        "enormous sub": "Bearer " + forge_token(valid_claims("9" * 200)),
        "sub beyond bigint": "Bearer " + forge_token(valid_claims(str(MAX_ID + 1))),
        "integer sub": "Bearer " + forge_token(valid_claims(1, sub=1)),
    }


BAD_HEADERS = _bad_authorization_headers()


def _send(
    client: ApiClient, method: str, path: str, body: Any, authorization: str | None
) -> GatewayResponse:
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.request(method, path, json_body=body, headers=headers)


def assert_unauthorized(response: GatewayResponse) -> dict[str, Any]:
    body = assert_problem(response, 401)
    challenge = response.header("WWW-Authenticate")
    assert challenge is not None, response.headers
    assert challenge.startswith("Bearer")
    return body


@pytest.mark.parametrize("case", BAD_HEADERS)
@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=lambda v: str(v)[:20])
def test_bad_tokens_are_401_on_every_protected_route(
    client: ApiClient, case: str, method: str, path: str, body: Any
) -> None:
    assert_unauthorized(_send(client, method, path, body, BAD_HEADERS[case]))


def test_missing_token_gets_a_bare_challenge(client: ApiClient) -> None:
    response = client.get("/tasks")
    assert_unauthorized(response)
    assert response.header("WWW-Authenticate") == 'Bearer realm="taskline"'


def test_bad_token_challenge_says_invalid_token(client: ApiClient) -> None:
    response = _send(client, "GET", "/tasks", None, BAD_HEADERS["expired beyond leeway"])
    challenge = response.header("WWW-Authenticate") or ""
    assert 'error="invalid_token"' in challenge
    assert "expired" in assert_unauthorized(response)["detail"]


def test_scheme_is_case_insensitive(user: ApiClient) -> None:
    token = user.token
    assert token is not None
    response = user.get("/tasks", headers={"Authorization": f"bearer {token}"})
    assert response.status == 200


def test_expiry_within_leeway_is_accepted(user: ApiClient) -> None:
    now = int(time.time())
    token = forge_token(valid_claims(user_id_of(user), iat=now - 3600, exp=now - 5))
    assert user.get("/tasks", token=token).status == 200


def test_a_forged_token_for_another_user_is_refused(user: ApiClient, other_user: ApiClient) -> None:
    assert other_user.token is not None
    victim = jwt.decode(other_user.token, options={"verify_signature": False})
    # The victim's own user and live session: only the signature can give the forgery away.
    claims = valid_claims(victim["sub"], sid=victim["sid"])
    assert_unauthorized(user.get("/users/me", token=forge_token(claims, secret=OTHER_SECRET)))
    assert_unauthorized(
        user.get(
            "/users/me",
            token=forge_token(claims, secret=OTHER_SECRET, kid=key_id(TEST_JWT_SECRET.encode())),
        )
    )
    assert user.get("/users/me", token=forge_token(claims)).json()["id"] == int(victim["sub"])


def test_unauthenticated_requests_learn_nothing_about_input_rules(client: ApiClient) -> None:
    """Authentication comes before body and parameter validation."""
    assert_unauthorized(client.post("/tasks", body="{not json"))
    assert_unauthorized(client.post("/tasks", json_body={"id": 1}))
    assert_unauthorized(client.get("/tasks/abc"))
    assert_unauthorized(client.get("/tasks?limit=1000"))
    assert_unauthorized(client.post("/tasks", body="a=b", headers={"Content-Type": "text/plain"}))


def test_bad_tokens_change_nothing(
    user: ApiClient, client: ApiClient, admin_engine: Engine
) -> None:
    task = user.post("/tasks", json_body=task_body()).json()
    owner = user_id_of(user)
    evil = forge_token(valid_claims(owner), secret=OTHER_SECRET, kid="current")
    for method, body in (("PATCH", {"status": "Done"}), ("PUT", task_body()), ("DELETE", None)):
        assert_unauthorized(
            client.request(method, f"/tasks/{task['id']}", json_body=body, token=evil)
        )
    assert_unauthorized(client.post("/tasks", json_body=task_body(), token=evil))
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 1
    assert user.get(f"/tasks/{task['id']}").json() == task


# Deleted accounts


def test_token_of_a_deleted_account(user: ApiClient, admin_engine: Engine) -> None:
    """Tokens are verified without a database round trip, so one can outlive its account;
    it then reaches nothing: no profile, no tasks, and it cannot create any."""
    user.post("/tasks", json_body=task_body())
    user_id = user_id_of(user)
    with admin_engine.begin() as connection:
        connection.execute(text("DELETE FROM users WHERE id = :id"), {"id": user_id})
    assert_unauthorized(user.get("/users/me"))
    assert_unauthorized(user.post("/tasks", json_body=task_body()))
    assert user.get("/tasks").json() == []
    assert_problem(user.get("/tasks/1"), 404)
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 0


def test_token_for_an_id_that_never_existed(client: ApiClient) -> None:
    token = forge_token(valid_claims(MAX_ID))
    assert_unauthorized(client.get("/users/me", token=token))
    assert_unauthorized(client.post("/tasks", json_body=task_body(), token=token))


# What no response may contain

FORBIDDEN_IN_RESPONSES = (
    "Traceback",
    'File "',
    "SELECT ",
    "INSERT ",
    "UPDATE ",
    "DELETE FROM",
    "sqlalchemy",
    "pg8000",
    "psycopg",
    "password_hash",
    "$2b$",
    TEST_JWT_SECRET,
)


def _nasty_requests(user: ApiClient) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/users", {"json_body": {"email": "x@example.com", "password": "x" * 100}}),
        ("POST", "/users", {"json_body": {"email": "x\x00@example.com", "password": "p" * 9}}),
        (
            "POST",
            "/users",
            {"body": "{'email': 1}", "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", "/token", {"json_body": {"email": "x\x00@example.com", "password": "p"}}),
        ("POST", "/token", {"body": "{", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/tasks", {"json_body": task_body(description="\x00")}),
        ("POST", "/tasks", {"json_body": task_body(deadline="9999-12-31T23:59:00-05:00")}),
        ("POST", "/tasks", {"body": "[" * 50_000, "headers": {"Content-Type": "application/json"}}),
        ("POST", "/tasks", {"body": "x" * 70_000, "headers": {"Content-Type": "application/json"}}),
        ("GET", "/tasks?cursor=%00%01", {}),
        ("GET", "/tasks?category=%00", {}),
        ("GET", "/tasks?due_before=99999-01-01T00:00:00Z", {}),
        ("GET", "/tasks/" + "9" * 400, {}),
        ("GET", "/tasks/1%00", {}),
        ("PATCH", "/tasks/1", {"json_body": {"status": None}}),
        ("PUT", "/tasks/1", {"json_body": [1, 2, 3]}),
        ("DELETE", "/tasks", {}),
        ("GET", "/../../etc/passwd", {}),
        ("GET", "/tasks", {"token": "x" * 100}),
    ]


def test_no_response_reveals_internals(user: ApiClient) -> None:
    user.post("/tasks", json_body=task_body())
    for method, path, options in _nasty_requests(user):
        response = user.request(method, path, **options)
        assert 400 <= response.status < 500, (method, path, response.status, response.body)
        everything = response.body.decode() + repr(response.headers)
        for forbidden in FORBIDDEN_IN_RESPONSES:
            assert forbidden not in everything, (method, path, forbidden, everything)


def test_successful_responses_do_not_reveal_the_password_hash(user: ApiClient) -> None:
    for path in ("/users/me", "/tasks"):
        assert b"$2b$" not in user.get(path).body
