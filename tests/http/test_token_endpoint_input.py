"""Odd input to the token and account-security routes is a clear 4xx, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import ApiClient

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        # An email no account can have, or an over-long email or password, is a wrong
        # credential, not a malformed request (DESIGN.md: the same invalid_grant body).
        ({"email": "a\u0000b@example.com", "password": "x"}, "invalid_grant"),
        ({"email": "a\u0001b@example.com", "password": "x"}, "invalid_grant"),
        ({"email": "a@example.com", "password": "x\u0000"}, "invalid_grant"),
        ({"email": "x" * 320, "password": "y" * 1024}, "invalid_grant"),
        ({"email": "x" * 321, "password": "y"}, "invalid_grant"),
        ({"email": "a@example.com", "password": "y" * 1025}, "invalid_grant"),
        ({"email": 5, "password": None}, "invalid_request"),
        ({"grant_type": None}, "unsupported_grant_type"),
        ({"grant_type": {"a": 1}}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "\u0000"}, "invalid_grant"),
    ],
)
def test_odd_json_grants(client: ApiClient, body: dict[str, Any], error: str) -> None:
    response = client.post("/token", json_body=body)
    assert response.status == 400
    assert response.json()["error"] == error


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("username=a%00b&password=x", "invalid_grant"),
        ("username=%FF%FE&password=%FF", "invalid_grant"),
        ("grant_type=refresh_token&refresh_token=%00", "invalid_grant"),
        ("username=a&password=b&grant_type=", "unsupported_grant_type"),
        ("username=a&username=b&password=c", "invalid_request"),
        ("username=a&password=b&grant_type=password&grant_type=password", "invalid_request"),
        # Unrecognized parameters are ignored, repeated or not (RFC 6749 section 3.2).
        ("username=a&password=b&scope=x&scope=y&=1&=2", "invalid_grant"),
    ],
)
def test_odd_form_grants(client: ApiClient, raw: str, error: str) -> None:
    response = client.post("/token", body=raw, headers=FORM)
    assert response.status == 400
    assert response.json()["error"] == error


def test_repeated_unrecognized_form_parameters_are_ignored(client: ApiClient) -> None:
    email = client.sign_up()
    login = client.post(
        "/token",
        body=f"username={email}&password=correct+horse+battery&client_id=a&client_id=b",
        headers=FORM,
    )
    assert login.status == 200, login.body
    revoke = client.post(
        "/token/revoke",
        body=f"token={login.json()['refresh_token']}&token_type_hint=x&token_type_hint=y",
        headers=FORM,
    )
    assert revoke.status == 200
    assert client.refresh(login.json()["refresh_token"]).status == 400  # it was revoked


def test_unreadable_bodies_are_problem_json_400(client: ApiClient) -> None:
    for path in ("/token", "/token/revoke"):
        for body, headers in (
            (b"\xff\xfe", FORM),
            (b"{", {"Content-Type": "application/json"}),
        ):
            response = client.post(path, body=body, headers=headers)
            assert response.status == 400
            assert response.header("Content-Type") == "application/problem+json"


def test_odd_passwords_on_account_routes(client: ApiClient) -> None:
    token = client.login(client.sign_up())
    change = {"current_password": "\u0000", "new_password": "abcdefghij"}
    assert client.put("/users/me/password", json_body=change, token=token).status == 403
    assert client.delete("/users/me", json_body={"password": "\u0000"}, token=token).status == 403
    surrogate = b'{"password": "\\udc00"}'
    response = client.delete(
        "/users/me", body=surrogate, headers={"Content-Type": "application/json"}, token=token
    )
    assert response.status == 422


def test_odd_source_addresses_share_one_throttle_key(client: ApiClient) -> None:
    email = client.sign_up()
    response = client.post(
        "/token",
        json_body={"email": email, "password": "correct horse battery"},
        source_ip="x" * 100,
    )
    assert response.status == 200
