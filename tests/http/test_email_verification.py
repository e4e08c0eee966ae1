"""Email verification without a sender (issue 19, item 5), as under `make run`: the link is
written to the log with its recipient; following it verifies; every way of misusing a link, and
the resend route's rate limit and sign-in check, through the local API Gateway."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import jwt
import pytest
from sqlalchemy import Engine, text

from tests.support.api import (
    ApiClient,
    assert_problem,
    forge_token,
    valid_claims,
    verification_path,
    verify_email,
)
from tests.support.environment import TEST_JWT_SECRET

RESEND = "/users/me/email-verification"
PREFERENCES = "/users/me/notifications"


def logged_links(caplog: pytest.LogCaptureFixture, address: str) -> list[str]:
    """The verification links written to the log for `address`, as API paths."""
    links = []
    for record in caplog.records:
        if getattr(record, "to", None) == address:
            links += [
                link.split("://", 1)[1].split("/", 1)[1] for link in getattr(record, "links", [])
            ]
    return ["/" + link for link in links]


def new_account(client: ApiClient) -> tuple[ApiClient, dict[str, Any]]:
    email = client.sign_up()
    owner = ApiClient(client.gateway, client.login(email))
    return owner, owner.get("/users/me").json()


def _token(user_id: int, address: str, secret: str = TEST_JWT_SECRET, **overrides: Any) -> str:
    from taskline.security.tokens import key_id

    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 3600,
        "iss": "taskline",
        "aud": "taskline-email-verification",
        "jti": "x",
        "email": address.lower(),
    }
    claims.update(overrides)
    return jwt.encode(
        claims, secret, algorithm="HS256", headers={"kid": key_id(TEST_JWT_SECRET.encode())}
    )


def test_without_a_sender_the_link_is_logged_and_following_it_verifies(
    client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    owner, me = new_account(client)
    assert me["email_verified"] is False
    [link] = logged_links(caplog, me["email"])
    assert link.startswith("/verify-email/")

    page = client.get(link)
    assert page.status == 200
    assert page.header("Content-Type") == "text/html; charset=utf-8"
    assert b"method='post'" in page.body
    assert "default-src 'none'" in (page.header("Content-Security-Policy") or "")
    assert owner.get("/users/me").json()["email_verified"] is False  # GET changes nothing

    done = client.post(
        link, body="confirm=yes", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert done.status == 200, done.body
    assert owner.get("/users/me").json()["email_verified"] is True
    assert owner.get(PREFERENCES).json()["email_deliverable"] is True
    # Idempotent: the same link again is 200 and changes nothing; its page says so.
    assert client.post(link).status == 200
    assert b"already confirmed" in client.get(link).body


def test_misused_links_are_404_or_410_and_change_nothing(
    client: ApiClient, admin_engine: Engine
) -> None:
    owner, me = new_account(client)
    _, other = new_account(client)
    genuine = _token(me["id"], me["email"])
    header, payload, signature = genuine.split(".")
    other_payload = jwt.utils.base64url_encode(
        json.dumps(
            {**jwt.decode(genuine, options={"verify_signature": False}), "sub": str(other["id"])}
        ).encode()
    ).decode()
    from tests.functions.test_reminders import _unsubscribe_token

    cases = {
        "forged signature": (f"{header}.{payload}.{signature[:-4]}AAAA", 404),
        "another account, same signature": (f"{header}.{other_payload}.{signature}", 404),
        "signed with another key": (_token(me["id"], me["email"], secret="y" * 40), 404),
        "expired": (
            _token(me["id"], me["email"], iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
            410,
        ),
        "an access token": (forge_token(valid_claims(me["id"])), 404),
        "an unsubscribe link": (_unsubscribe_token(me["id"]), 404),
        "no email claim": (_token(me["id"], me["email"], email=""), 404),
        "alg none": (jwt.encode({"sub": str(me["id"])}, "", algorithm="none"), 404),
        "garbage": ("not-a-token", 404),
        "unknown account": (_token(999_999, me["email"]), 404),
        # Signed by us for the other account, but naming this one's address: an address the
        # other account does not have (say, its address before a change).
        "another account's address": (_token(other["id"], me["email"]), 410),
    }
    for name, (token, status) in cases.items():
        for method in ("GET", "POST"):
            response = client.request(method, f"/verify-email/{token}")
            assert response.status == status, (name, method, response.body)
            assert_problem(response, status)
    with admin_engine.connect() as connection:
        verified = connection.execute(
            text("SELECT count(*) FROM users WHERE email_verified_at IS NOT NULL")
        ).scalar_one()
    assert verified == 0
    assert owner.get("/users/me").json()["email_verified"] is False


def test_a_link_for_an_address_the_account_no_longer_has_is_410(
    client: ApiClient, admin_engine: Engine
) -> None:
    owner, me = new_account(client)
    old_link = verification_path(me["id"], me["email"])
    with admin_engine.begin() as connection:  # the address changes (no route does it yet)
        connection.execute(
            text("UPDATE users SET email = 'changed@example.com' WHERE id = :id"), {"id": me["id"]}
        )
    assert_problem(client.post(old_link), 410)
    assert owner.get("/users/me").json()["email_verified"] is False


def test_a_verification_link_is_not_an_access_token(client: ApiClient) -> None:
    _, me = new_account(client)
    link_token = verification_path(me["id"], me["email"]).rsplit("/", 1)[1]
    assert_problem(client.get("/users/me", token=link_token), 401)
    assert_problem(client.get("/tasks", token=link_token), 401)


def test_resending_is_rate_limited_per_account(
    client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    owner, me = new_account(client)
    other, _ = new_account(client)
    # Sign-up's email counts: four more within the hour (EMAIL_VERIFICATION_EMAILS_PER_WINDOW=5).
    for _ in range(4):
        assert owner.post(RESEND).status == 204
    refused = owner.post(RESEND)
    problem = assert_problem(refused, 429)
    assert problem["type"] == "urn:taskline:problem:too-many-emails"
    retry_after = int(refused.header("Retry-After") or "0")
    assert 3500 < retry_after <= 3600
    assert len(logged_links(caplog, me["email"])) == 5  # the refused one sent nothing
    assert other.post(RESEND).status == 204  # another account has its own quota
    # Each link works; the newest verifies.
    assert client.post(logged_links(caplog, me["email"])[-1]).status == 200


def test_resending_needs_a_live_sign_in(client: ApiClient) -> None:
    email = client.sign_up()
    pair = client.login_pair(email)
    assert client.post("/users/me/logout-all", token=pair["access_token"]).status == 204
    assert_problem(client.post(RESEND, token=pair["access_token"]), 401)
    assert_problem(client.post(RESEND, token=""), 401)


def test_a_used_link_does_not_reverify_after_the_address_was_suppressed(
    user: ApiClient, client: ApiClient, admin_engine: Engine
) -> None:
    """Replay after re-verification: a link that verified once cannot later lift a suppression
    recorded after it was issued."""
    me = user.get("/users/me").json()
    used = verification_path(me["id"], me["email"], time.time() - 5)
    with admin_engine.begin() as connection:
        connection.execute(
            text("INSERT INTO email_suppressions (address, reason) VALUES (:a, 'complaint')"),
            {"a": me["email"].lower()},
        )
    assert_problem(client.post(used), 410)
    assert user.get(PREFERENCES).json()["email_deliverable"] is False
    verify_email(user)  # a link issued now does
    assert user.get(PREFERENCES).json()["email_deliverable"] is True
