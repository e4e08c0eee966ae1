"""Refresh tokens (RFC 6749 section 6): issued at login, rotated on every use, reuse ends the
session, and of concurrent exchanges of one token exactly one succeeds."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from sqlalchemy import Engine, text

from taskline.services import sign_in_service
from tests.support.api import ApiClient
from tests.support.clock import FrozenClock

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "The refresh token is invalid, expired or revoked.",
}


def _claims(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


def test_login_returns_a_short_lived_access_token_and_a_refresh_token(client: ApiClient) -> None:
    email = client.sign_up()
    response = client.post(
        "/token",
        body=urlencode(
            {"grant_type": "password", "username": email, "password": "correct horse battery"}
        ),
        headers=FORM,
    )
    assert response.status == 200
    assert response.header("Cache-Control") == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    claims = _claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == 900
    assert claims["sid"]  # the session the token belongs to
    assert "." not in body["refresh_token"]
    assert len(body["refresh_token"]) >= 43


def test_refresh_token_is_stored_only_as_its_sha256(
    client: ApiClient, admin_engine: Engine
) -> None:
    pair = client.login_pair(client.sign_up())
    with admin_engine.connect() as connection:
        stored = connection.execute(text("SELECT token_hash FROM refresh_tokens")).scalars().all()
        dump = connection.execute(text("SELECT r::text FROM refresh_tokens r")).scalars().all()
    assert stored == [hashlib.sha256(pair["refresh_token"].encode()).digest()]
    assert all(pair["refresh_token"] not in row for row in dump)


def test_refresh_grant_gives_a_new_pair_in_the_same_session(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    response = client.refresh(pair["refresh_token"])
    assert response.status == 200
    assert response.header("Cache-Control") == "no-store"
    renewed = response.json()
    assert renewed["refresh_token"] != pair["refresh_token"]
    assert renewed["access_token"] != pair["access_token"]
    assert renewed["expires_in"] == 900
    assert _claims(renewed["access_token"])["sid"] == _claims(pair["access_token"])["sid"]
    assert client.get("/users/me", token=renewed["access_token"]).status == 200
    # The renewed refresh token is good for the next exchange.
    assert client.refresh(renewed["refresh_token"]).status == 200


def test_refresh_grant_as_json(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    response = client.post(
        "/token", json_body={"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert response.status == 200
    assert client.get("/users/me", token=response.json()["access_token"]).status == 200


def test_a_refresh_token_works_once(client: ApiClient) -> None:
    pair = client.login_pair(client.sign_up())
    assert client.refresh(pair["refresh_token"]).status == 200
    again = client.refresh(pair["refresh_token"])
    assert again.status == 400
    assert again.json() == INVALID_GRANT
    assert again.header("Cache-Control") == "no-store"


def test_stolen_token_replayed_after_the_owner_refreshed_ends_the_session(
    client: ApiClient,
) -> None:
    email = client.sign_up()
    owner = client.login_pair(email)
    elsewhere = client.login_pair(email)  # the same user signed in on another device
    stolen = owner["refresh_token"]

    owner_next = client.refresh(owner["refresh_token"]).json()
    attacker = client.refresh(stolen)
    assert attacker.status == 400
    assert attacker.json() == INVALID_GRANT

    # The whole family is revoked: the owner's newer refresh token is dead too ...
    assert client.refresh(owner_next["refresh_token"]).json() == INVALID_GRANT
    # ... and the session's access tokens are refused by the account routes at once.
    me = client.get("/users/me", token=owner_next["access_token"])
    assert me.status == 401
    assert "invalid_token" in (me.header("WWW-Authenticate") or "")
    # The user's other session is untouched.
    assert client.refresh(elsewhere["refresh_token"]).status == 200


def test_thief_refreshing_first_loses_the_session_when_the_owner_comes_back(
    client: ApiClient,
) -> None:
    owner = client.login_pair(client.sign_up())
    thief = client.refresh(owner["refresh_token"]).json()
    assert client.refresh(owner["refresh_token"]).status == 400  # the owner's (older) copy
    assert client.refresh(thief["refresh_token"]).json() == INVALID_GRANT
    assert client.get("/users/me", token=thief["access_token"]).status == 401


def test_concurrent_refreshes_with_one_token_only_one_succeeds(
    client: ApiClient,
    admin_engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
) -> None:
    from taskline.errors import InvalidRefreshToken
    from taskline.schemas import RefreshGrant

    threads = 4
    monkeypatch.setenv("DB_POOL_SIZE", str(threads))
    pair = client.login_pair(client.sign_up())
    grant = RefreshGrant(grant_type="refresh_token", refresh_token=pair["refresh_token"])
    outcomes: list[object] = []
    lock = threading.Lock()

    def exchange() -> None:
        try:
            result: object = sign_in_service.issue_token(grant, "192.0.2.1")
        except InvalidRefreshToken as error:
            result = error
        with lock:
            outcomes.append(result)

    workers = [threading.Thread(target=exchange) for _ in range(threads)]
    # Hold the token's row so that every exchange is under way before any can finish: a
    # check-then-update implementation would let them all through once the row is released.
    with admin_engine.connect() as holder:
        holder.execute(text("SELECT 1 FROM refresh_tokens FOR UPDATE"))
        for worker in workers:
            worker.start()
        _wait_for_lock_waiters(admin_engine, threads)
        holder.commit()
    for worker in workers:
        worker.join(timeout=60)

    assert len(outcomes) == threads
    winners = [o for o in outcomes if not isinstance(o, InvalidRefreshToken)]
    assert len(winners) == 1
    # The losers presented a token that had just been used: that is reuse, so the session ended
    # and the winner's new refresh token is refused too (clients must refresh one at a time).
    new_refresh = getattr(winners[0], "refresh_token", "")
    assert client.refresh(new_refresh).json() == INVALID_GRANT


def _wait_for_lock_waiters(engine: Engine, count: int) -> None:
    """Block until `count` other sessions wait for a row lock (bounded: at most 30 s)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    with engine.connect() as connection:
        while connection.execute(query).scalar() != count:
            assert time.monotonic() < deadline, "the exchanges never reached the row lock"
            connection.rollback()
            time.sleep(0.01)


def test_unknown_and_malformed_refresh_tokens(client: ApiClient) -> None:
    assert client.refresh("not-a-token-we-issued").json() == INVALID_GRANT
    assert client.refresh("\u00e9" * 40).json() == INVALID_GRANT
    missing = client.post("/token", body="grant_type=refresh_token", headers=FORM)
    assert missing.status == 400
    assert missing.json()["error"] == "invalid_request"
    # An over-long refresh token is one we never issued, like any other (issue 13).
    for too_long in ("x" * 513, "x" * 5000, "x" * 60_000):
        assert client.refresh(too_long).json() == INVALID_GRANT
    not_text = client.post("/token", json_body={"grant_type": "refresh_token", "refresh_token": 7})
    assert not_text.json()["error"] == "invalid_request"
    surrogate = client.post(
        "/token",
        body=b'{"grant_type": "refresh_token", "refresh_token": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    assert surrogate.status == 400
    assert surrogate.json()["error"] == "invalid_request"


def test_other_grant_types_are_refused(client: ApiClient) -> None:
    response = client.post("/token", body="grant_type=client_credentials", headers=FORM)
    assert response.status == 400
    assert response.json()["error"] == "unsupported_grant_type"
    listed = client.post("/token", json_body={"grant_type": ["refresh_token"]})
    assert listed.json()["error"] == "unsupported_grant_type"


def test_refresh_token_expires_after_its_ttl(
    client: ApiClient, frozen_clock: FrozenClock, admin_engine: Engine
) -> None:
    pair = client.login_pair(client.sign_up())
    frozen_clock.advance(14 * 86400 - 1)
    renewed = client.refresh(pair["refresh_token"]).json()  # one second before it expires
    frozen_clock.advance(14 * 86400 + 1)
    assert client.refresh(renewed["refresh_token"]).json() == INVALID_GRANT
    # An expired (unused) token is just refused: no session was ended because of it.
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM auth_sessions")).scalar() == 1


def test_no_session_outlives_its_maximum_age(
    client: ApiClient,
    frozen_clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    reload_settings: None,
) -> None:
    monkeypatch.setenv("SESSION_MAX_AGE_SECONDS", "3600")
    monkeypatch.setenv("REFRESH_TOKEN_TTL_SECONDS", "3000")
    refresh_token = client.login_pair(client.sign_up())["refresh_token"]
    for _ in range(3):  # refreshed every 20 minutes, the session still ends after an hour
        frozen_clock.advance(1200 - 1)
        response = client.refresh(refresh_token)
        assert response.status == 200
        refresh_token = response.json()["refresh_token"]
    frozen_clock.advance(3)
    assert client.refresh(refresh_token).json() == INVALID_GRANT


def test_login_prunes_the_users_expired_sessions(
    client: ApiClient, frozen_clock: FrozenClock, admin_engine: Engine
) -> None:
    email = client.sign_up()
    client.login_pair(email)
    client.login_pair(email)
    frozen_clock.advance(91 * 86400)
    client.login_pair(email)
    with admin_engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM auth_sessions")).scalar() == 1
        assert connection.execute(text("SELECT count(*) FROM refresh_tokens")).scalar() == 1
