"""PUT /users/me/password: needs the current password; ends the user's other sessions."""

from __future__ import annotations

import pytest

from tests.support.api import ApiClient
from tests.support.clock import FrozenClock

OLD = "correct horse battery"
NEW = "tr0ub4dor & 3 more words"


def _change(client: ApiClient, token: str, current: str = OLD, new: str = NEW) -> int:
    response = client.put(
        "/users/me/password",
        json_body={"current_password": current, "new_password": new},
        token=token,
    )
    return response.status


def test_change_password_ends_the_other_sessions_and_keeps_this_one(client: ApiClient) -> None:
    email = client.sign_up()
    mine, other = client.login_pair(email), client.login_pair(email)

    response = client.put(
        "/users/me/password",
        json_body={"current_password": OLD, "new_password": NEW},
        token=mine["access_token"],
    )
    assert response.status == 204
    assert response.body == b""

    # The old password no longer works, the new one does.
    old_login = client.post("/token", json_body={"email": email, "password": OLD})
    assert old_login.status == 400
    assert old_login.json()["error"] == "invalid_grant"
    assert client.post("/token", json_body={"email": email, "password": NEW}).status == 200
    # The other session is over: its refresh token is refused, and so is its access token on
    # the account routes.
    assert client.refresh(other["refresh_token"]).status == 400
    assert client.get("/users/me", token=other["access_token"]).status == 401
    # The caller's session goes on.
    assert client.get("/users/me", token=mine["access_token"]).status == 200
    assert client.refresh(mine["refresh_token"]).status == 200


def test_wrong_current_password_is_403_and_changes_nothing(client: ApiClient) -> None:
    email = client.sign_up()
    mine, other = client.login_pair(email), client.login_pair(email)
    response = client.put(
        "/users/me/password",
        json_body={"current_password": "not my password", "new_password": NEW},
        token=mine["access_token"],
    )
    assert response.status == 403
    assert response.header("Content-Type") == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:taskline:problem:wrong-password"
    assert problem["status"] == 403
    assert client.post("/token", json_body={"email": email, "password": OLD}).status == 200
    assert client.refresh(other["refresh_token"]).status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"current_password": OLD, "new_password": "short"}, "new_password"),
        ({"current_password": OLD, "new_password": "\u00e9" * 37}, "new_password"),  # 74 bytes
        ({"current_password": OLD, "new_password": OLD}, "new_password"),
        ({"current_password": OLD}, "new_password"),
        ({"new_password": NEW}, "current_password"),
        ({"current_password": "", "new_password": NEW}, "current_password"),
        ({"current_password": OLD, "new_password": NEW, "email": "x@example.com"}, "email"),
    ],
)
def test_invalid_password_change_bodies_are_422(
    client: ApiClient, body: dict[str, str], field: str
) -> None:
    email = client.sign_up()
    token = client.login(email)
    response = client.put("/users/me/password", json_body=body, token=token)
    assert response.status == 422
    assert any(error["loc"][-1] == field for error in response.json()["errors"])
    assert client.post("/token", json_body={"email": email, "password": OLD}).status == 200


def test_password_change_needs_a_live_session(client: ApiClient) -> None:
    assert client.put("/users/me/password", json_body={}).status == 401
    pair = client.login_pair(client.sign_up())
    assert client.post("/users/me/logout-all", token=pair["access_token"]).status == 204
    assert _change(client, pair["access_token"]) == 401


def test_bad_bodies_never_reach_the_service(client: ApiClient) -> None:
    token = client.login(client.sign_up())
    not_json = client.put(
        "/users/me/password", body="{", headers={"Content-Type": "application/json"}, token=token
    )
    assert not_json.status == 400
    as_form = client.put(
        "/users/me/password",
        body="current_password=a",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        token=token,
    )
    assert as_form.status == 415


def test_repeated_wrong_passwords_are_throttled(
    client: ApiClient, frozen_clock: FrozenClock
) -> None:
    # A stolen access token must not turn this route into an unthrottled password oracle.
    email = client.sign_up()
    token = client.login(email)
    for _ in range(5):
        assert _change(client, token, current="guess guess") == 403
    response = client.put(
        "/users/me/password",
        json_body={"current_password": OLD, "new_password": NEW},
        token=token,
    )
    assert response.status == 429
    assert response.header("Content-Type") == "application/problem+json"
    assert response.header("Retry-After") == "900"
    assert response.json()["type"] == "urn:taskline:problem:too-many-attempts"
    # The same counter guards the login.
    login = client.post("/token", json_body={"email": email, "password": OLD})
    assert login.status == 429
    # After the wait the right password works, and it was never changed.
    frozen_clock.advance(900)
    assert _change(client, token) == 204


def test_an_over_long_password_to_confirm_is_a_wrong_one(client: ApiClient) -> None:
    """Like a login: any length of wrong password is 403, never a length rule (issue 13)."""
    email = client.sign_up()
    token = client.login(email)
    for guess in ("x" * 1025, "x" * 30_000):
        response = client.put(
            "/users/me/password",
            json_body={"current_password": guess, "new_password": NEW},
            token=token,
        )
        assert response.status == 403, response.body
        deletion = client.delete("/users/me", json_body={"password": guess}, token=token)
        assert deletion.status == 403, deletion.body
    assert client.post("/token", json_body={"email": email, "password": OLD}).status == 200
