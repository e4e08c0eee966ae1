"""Ended sign-ins on the account routes (issue 19, items 1 and 6): every route of account-level
state refuses an access token whose sign-in ended (password change, logout-all, revocation,
account deletion) with 401, and an ending that protects the account revokes the calendar feed.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from taskline.api.auth import SignedIn
from taskline.api.documentation import UNAUTHORIZED, Routes
from taskline.api.resolver import TasklineResolver
from tests.support.api import ApiClient, assert_problem

PASSWORD = "correct horse battery"
NEW_PASSWORD = "tr0ub4dor & 3 more words"
REPO = Path(__file__).resolve().parents[2]

# Every operation on account-level state, with a body its input rules accept (so a 401 is
# about the token, not the input).
ACCOUNT_OPERATIONS: dict[tuple[str, str], dict[str, Any] | None] = {
    ("GET", "/users/me"): None,
    ("DELETE", "/users/me"): {"password": PASSWORD},
    ("PUT", "/users/me/password"): {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    ("POST", "/users/me/logout-all"): None,
    ("GET", "/users/me/notifications"): None,
    ("PUT", "/users/me/notifications"): {
        "email_enabled": True,
        "due_soon_enabled": True,
        "overdue_enabled": True,
        "due_soon_minutes": 60,
    },
    ("PATCH", "/users/me/notifications"): {"email_enabled": True},
    ("POST", "/users/me/calendar"): None,
    ("DELETE", "/users/me/calendar"): None,
}


def _call(client: ApiClient, method: str, path: str, token: str) -> Any:
    body = ACCOUNT_OPERATIONS[(method, path)]
    return client.request(method, path, json_body=body, token=token)


def _ended_by_password_change(client: ApiClient) -> str:
    """An access token copied before its owner changed the password from another session."""
    email = client.sign_up()
    stolen, owner = client.login_pair(email), client.login_pair(email)
    changed = client.put(
        "/users/me/password",
        json_body={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        token=owner["access_token"],
    )
    assert changed.status == 204
    return str(stolen["access_token"])


def _assert_sign_in_ended(response: Any) -> None:
    body = assert_problem(response, 401)
    assert body["detail"] == "This session has ended; sign in again."
    assert response.header("WWW-Authenticate").startswith('Bearer realm="taskline"')


def test_the_list_names_every_account_operation_the_api_serves() -> None:
    document = json.loads((REPO / "shared/taskline/api/openapi.json").read_text())
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/users/me")
        for method in operations
    }
    assert served == set(ACCOUNT_OPERATIONS)


@pytest.mark.parametrize(("method", "path"), sorted(ACCOUNT_OPERATIONS))
def test_a_token_of_an_ended_sign_in_is_refused(client: ApiClient, method: str, path: str) -> None:
    _assert_sign_in_ended(_call(client, method, path, _ended_by_password_change(client)))


def test_after_logout_all_a_copied_token_cannot_issue_a_feed_or_switch_email_on(
    client: ApiClient,
) -> None:
    """The issue's reproduction: the owner unsubscribed, then signed out everywhere."""
    email = client.sign_up()
    stolen, owner = client.login_pair(email), client.login_pair(email)
    off = client.patch(
        "/users/me/notifications",
        json_body={"email_enabled": False},
        token=owner["access_token"],
    )
    assert off.status == 200
    assert client.post("/users/me/logout-all", token=owner["access_token"]).status == 204

    _assert_sign_in_ended(client.post("/users/me/calendar", token=stolen["access_token"]))
    _assert_sign_in_ended(
        client.patch(
            "/users/me/notifications",
            json_body={"email_enabled": True},
            token=stolen["access_token"],
        )
    )
    again = client.login_pair(email)
    settings = client.get("/users/me/notifications", token=again["access_token"]).json()
    assert settings["email_enabled"] is False


def _feed_url(client: ApiClient, token: str) -> str:
    response = client.post("/users/me/calendar", token=token)
    assert response.status == 201
    url = str(response.json()["url"])
    assert client.get(url.removeprefix("http://localhost")).status == 200
    return url.removeprefix("http://localhost")


def test_a_password_change_revokes_the_calendar_feed(client: ApiClient) -> None:
    email = client.sign_up()
    pair = client.login_pair(email)
    feed = _feed_url(client, pair["access_token"])
    changed = client.put(
        "/users/me/password",
        json_body={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        token=pair["access_token"],
    )
    assert changed.status == 204
    assert_problem(client.get(feed), 404)
    # The caller's own session goes on and can issue a new feed.
    assert client.post("/users/me/calendar", token=pair["access_token"]).status == 201


def test_logout_all_revokes_the_calendar_feed(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    feed = _feed_url(client, pair["access_token"])
    assert client.post("/users/me/logout-all", token=pair["access_token"]).status == 204
    assert_problem(client.get(feed), 404)


def test_deleting_the_account_revokes_the_calendar_feed(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    feed = _feed_url(client, pair["access_token"])
    deleted = client.delete(
        "/users/me", json_body={"password": PASSWORD}, token=pair["access_token"]
    )
    assert deleted.status == 204
    assert_problem(client.get(feed), 404)


def test_a_single_sign_out_elsewhere_leaves_the_feed_alone(client: ApiClient) -> None:
    """Only the endings that protect the account revoke the feed; one device's logout does not."""
    email = client.sign_up()
    mine, other = client.login_pair(email), client.login_pair(email)
    feed = _feed_url(client, mine["access_token"])
    revoked = client.post(
        "/token/revoke",
        body=f"token={other['refresh_token']}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert revoked.status == 200
    assert client.get(feed).status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/users/me/calendar"),
        ("PUT", "/users/me/notifications"),
        ("PATCH", "/users/me/notifications"),
    ],
)
def test_a_deleted_accounts_token_is_401_not_500(client: ApiClient, method: str, path: str) -> None:
    """Item 6: the access token is still genuine and unexpired, its account is gone."""
    pair = client.login_pair(client.sign_up())
    deleted = client.delete(
        "/users/me", json_body={"password": PASSWORD}, token=pair["access_token"]
    )
    assert deleted.status == 204
    _assert_sign_in_ended(_call(client, method, path, pair["access_token"]))


def test_a_request_racing_a_sign_out_waits_for_it_and_is_refused(
    client: ApiClient, admin_engine: Engine
) -> None:
    """The check holds the sign-in until the commit: a feed issued while a sign-out is under
    way is refused once it commits, never created behind the sign-out's back."""
    email = client.sign_up()
    stolen = client.login_pair(email)["access_token"]
    answers: list[int] = []
    with admin_engine.connect() as connection:
        # A sign-out everywhere, not committed yet.
        connection.execute(
            text(
                "DELETE FROM auth_sessions WHERE user_id = "
                "(SELECT id FROM users WHERE email = :email)"
            ),
            {"email": email},
        )
        racer = threading.Thread(
            target=lambda: answers.append(client.post("/users/me/calendar", token=stolen).status)
        )
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive(), "the request did not wait for the sign-out under way"
        connection.commit()
    racer.join(timeout=10)
    assert answers == [401]
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM calendar_feeds")).scalar() == 0


def test_an_account_route_must_be_declared_live() -> None:
    routes = Routes(TasklineResolver(), "Accounts", signed_in=SignedIn.TOKEN)
    with pytest.raises(ValueError, match="account-level"):
        routes.route("GET", "/users/me/anything", "getAnything", "Anything", {200: UNAUTHORIZED})
