"""A container checks each token once; what it remembers never outlives the token or its key."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from taskline.security import tokens
from taskline.settings import get_settings
from tests.support.api import ApiClient
from tests.support.environment import TEST_JWT_SECRET


def test_the_same_token_keeps_working(user: ApiClient) -> None:
    for _ in range(3):
        assert user.get("/users/me").status == 200


def test_a_remembered_token_is_refused_once_it_expires(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert user.get("/users/me").status == 200
    settings = get_settings()
    later = time.time() + settings.access_token_ttl_seconds + settings.jwt_leeway_seconds + 1
    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: later))
    response = user.get("/users/me")
    assert response.status == 401
    challenge = response.header("WWW-Authenticate") or ""
    assert 'error="invalid_token"' in challenge
    assert "expired" in challenge


def test_a_remembered_token_is_refused_once_its_key_is_retired(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    assert user.get("/users/me").status == 200
    monkeypatch.setenv("JWT_SECRET", "a-brand-new-signing-key-" + "n" * 32)
    monkeypatch.setenv("JWT_PREVIOUS_SECRETS", f'["{TEST_JWT_SECRET}"]')
    get_settings.cache_clear()
    assert user.get("/users/me").status == 200  # the old key still verifies while listed
    monkeypatch.setenv("JWT_PREVIOUS_SECRETS", "[]")
    get_settings.cache_clear()
    assert user.get("/users/me").status == 401


def test_a_remembered_token_is_refused_for_another_audience(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    assert user.get("/users/me").status == 200
    monkeypatch.setenv("JWT_AUDIENCE", "another-api")
    get_settings.cache_clear()
    assert user.get("/users/me").status == 401


def test_a_remembered_token_of_an_ended_session_is_refused_on_the_account_routes(
    client: ApiClient,
) -> None:
    """The cache only spares re-checking the signature: the account routes still check the
    token's session in the database on every request."""
    pair = client.login_pair(client.sign_up())
    token = pair["access_token"]
    assert client.get("/users/me", token=token).status == 200  # verified and remembered
    assert client.post("/users/me/logout-all", token=token).status == 204
    assert client.get("/users/me", token=token).status == 401
    assert client.post("/users/me/logout-all", token=token).status == 401
