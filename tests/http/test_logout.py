"""Ending sessions: POST /token/revoke (RFC 7009) and POST /users/me/logout-all."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, text

from tests.support.api import ApiClient, task_body

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _revoke(client: ApiClient, token: str, hint: str | None = None) -> int:
    fields = {"token": token} if hint is None else {"token": token, "token_type_hint": hint}
    response = client.post("/token/revoke", body=urlencode(fields), headers=FORM)
    assert response.header("Cache-Control") == "no-store"
    assert response.body == b""
    return response.status


def test_revoking_a_refresh_token_ends_its_session(client: ApiClient) -> None:
    email = client.sign_up()
    pair = client.login_pair(email)
    other = client.login_pair(email)
    assert _revoke(client, pair["refresh_token"], "refresh_token") == 200
    assert client.refresh(pair["refresh_token"]).status == 400
    # The account routes refuse the session's access token at once; the task routes verify
    # access tokens without the database, so there it runs until it expires (docs/security.md).
    assert client.get("/users/me", token=pair["access_token"]).status == 401
    assert client.get("/tasks", token=pair["access_token"]).status == 200
    # Other sessions go on.
    assert client.get("/users/me", token=other["access_token"]).status == 200
    assert client.refresh(other["refresh_token"]).status == 200


def test_revoking_an_access_token_ends_its_session(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    assert _revoke(client, pair["access_token"]) == 200
    assert client.refresh(pair["refresh_token"]).status == 400
    assert client.get("/users/me", token=pair["access_token"]).status == 401


def test_a_wrong_type_hint_is_ignored(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    assert _revoke(client, pair["refresh_token"], "access_token") == 200
    assert client.refresh(pair["refresh_token"]).status == 400
    second = client.login_pair(client.sign_up())
    assert _revoke(client, second["refresh_token"], "no_such_hint") == 200
    assert client.refresh(second["refresh_token"]).status == 400


def test_revoking_an_already_used_refresh_token_ends_the_session(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    renewed = client.refresh(pair["refresh_token"]).json()
    assert _revoke(client, pair["refresh_token"]) == 200
    assert client.refresh(renewed["refresh_token"]).status == 400


def test_revoking_unknown_or_invalid_tokens_answers_200_and_changes_nothing(
    client: ApiClient, admin_engine: Engine
) -> None:
    pair = client.login_pair(client.sign_up())
    for token in (
        "no-such-token",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.e30.",
        "x" * 4096,
        "\u00e9t\u00e9",
    ):
        assert _revoke(client, token) == 200
    assert _revoke(client, pair["refresh_token"] + "x") == 200
    as_json = client.post("/token/revoke", json_body={"token": "unknown", "token_type_hint": 5})
    assert as_json.status == 200
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM auth_sessions")).scalar() == 1
    assert client.refresh(pair["refresh_token"]).status == 200
    # Revoking twice is fine too.
    assert _revoke(client, pair["access_token"]) == 200
    assert _revoke(client, pair["access_token"]) == 200


def test_revoke_without_a_token_is_an_invalid_request(client: ApiClient) -> None:
    for body, headers in (
        ("", FORM),
        ("token=", FORM),
        ("token_type_hint=refresh_token", FORM),
        ("token=a&token=b", FORM),
    ):
        response = client.post("/token/revoke", body=body, headers=headers)
        assert response.status == 400, body
        assert response.json()["error"] == "invalid_request"
    for document in ({}, {"token": None}, {"token": ["a"]}, ["token"]):
        response = client.post("/token/revoke", json_body=document)
        assert response.status == 400
        assert response.json()["error"] == "invalid_request"
    not_json = client.post("/token/revoke", body="{", headers={"Content-Type": "application/json"})
    assert not_json.status == 400
    assert not_json.header("Content-Type") == "application/problem+json"
    wrong_type = client.post(
        "/token/revoke", body="token=x", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status == 415


def test_logout_all_ends_every_session_of_the_user_only(
    client: ApiClient, admin_engine: Engine
) -> None:
    email = client.sign_up()
    phone, laptop = client.login_pair(email), client.login_pair(email)
    bystander = client.login_pair(client.sign_up())

    response = client.post("/users/me/logout-all", token=laptop["access_token"])
    assert response.status == 204
    assert response.body == b""

    for pair in (phone, laptop):
        assert client.refresh(pair["refresh_token"]).status == 400
        assert client.get("/users/me", token=pair["access_token"]).status == 401
    # A token of an ended session cannot log out again.
    assert client.post("/users/me/logout-all", token=phone["access_token"]).status == 401
    assert client.refresh(bystander["refresh_token"]).status == 200
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM auth_sessions")).scalar() == 1
    # Signing in again works.
    assert client.get("/users/me", token=client.login(email)).status == 200


def test_logout_all_keeps_the_users_tasks(client: ApiClient) -> None:
    email = client.sign_up()
    token = client.login(email)
    assert client.post("/tasks", json_body=task_body(), token=token).status == 201
    assert client.post("/users/me/logout-all", token=token).status == 204
    assert len(client.get("/tasks", token=client.login(email)).json()) == 1


def test_logout_all_needs_a_bearer_token(client: ApiClient) -> None:
    response = client.post("/users/me/logout-all")
    assert response.status == 401
    assert response.header("WWW-Authenticate") == 'Bearer realm="taskline"'
    assert client.post("/users/me/logout-all", token="nonsense").status == 401


def test_wrong_methods_on_the_new_routes(client: ApiClient) -> None:
    response = client.get("/token/revoke")
    assert response.status == 405
    assert response.header("Allow") == "POST"
    response = client.get("/users/me/logout-all")
    assert response.status == 405
    response = client.post("/users/me/password")
    assert response.status == 405
    assert response.header("Allow") == "PUT"
    response = client.patch("/users/me")
    assert response.status == 405
    assert response.header("Allow") == "DELETE, GET"


@pytest.mark.parametrize("length", [4097, 5000, 60_000])
def test_revoking_a_token_of_any_length_answers_200_with_an_empty_body(
    client: ApiClient, admin_engine: Engine, length: int
) -> None:
    """RFC 7009 section 2.2: an invalid token is not an error, however long (issue 13)."""
    pair = client.login_pair(client.sign_up())
    for token in ("x" * length, pair["access_token"] + "x" * length, "a." * (length // 2)):
        for response in (
            client.post("/token/revoke", body=urlencode({"token": token}), headers=FORM),
            client.post("/token/revoke", json_body={"token": token}),
        ):
            assert response.status == 200, response.body
            assert response.body == b""
            assert response.header("Cache-Control") == "no-store"
    surrogate = client.post(
        "/token/revoke", body=b'{"token": "\\ud800"}', headers={"Content-Type": "application/json"}
    )
    assert (surrogate.status, surrogate.body) == (200, b"")
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM auth_sessions")).scalar() == 1
    assert client.refresh(pair["refresh_token"]).status == 200
