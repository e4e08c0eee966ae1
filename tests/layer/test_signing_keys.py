"""Signing-key rotation: the newest key signs, older keys verify until they are retired."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from tests.support.api import ApiClient
from tests.support.environment import TEST_JWT_SECRET

NEW_SECRET = "rotated-signing-key-" + "y" * 32
OLDER_SECRET = "older-signing-key-" + "z" * 32


def _kid(token: str) -> str:
    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def _rotate(monkeypatch: pytest.MonkeyPatch, current: str, previous: str) -> None:
    """A deploy with new key settings: every container re-reads them (the engine can stay)."""
    from taskline.settings import get_settings

    monkeypatch.setenv("JWT_SECRET", current)
    monkeypatch.setenv("JWT_PREVIOUS_SECRETS", previous)
    get_settings.cache_clear()


def test_new_tokens_use_the_newest_key_and_old_ones_verify_until_retired(
    client: ApiClient, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    from taskline.security.tokens import key_id

    email = client.sign_up()
    old = client.login_pair(email)
    assert _kid(old["access_token"]) == key_id(TEST_JWT_SECRET.encode())

    # Step 2 of the procedure: the new key signs, the old one still verifies.
    _rotate(monkeypatch, NEW_SECRET, TEST_JWT_SECRET)
    new = client.login_pair(email)
    assert _kid(new["access_token"]) == key_id(NEW_SECRET.encode())
    assert client.get("/users/me", token=old["access_token"]).status == 200
    assert client.get("/tasks", token=new["access_token"]).status == 200

    # Step 3: the old key is retired; its tokens are refused, with the reason.
    _rotate(monkeypatch, NEW_SECRET, "")
    refused = client.get("/tasks", token=old["access_token"])
    assert refused.status == 401
    assert "unknown key" in (refused.header("WWW-Authenticate") or "")
    assert client.get("/tasks", token=new["access_token"]).status == 200

    # Refresh tokens are opaque, not signed: the session signed with the old key goes on,
    # and its next access token carries the new key.
    renewed = client.refresh(old["refresh_token"])
    assert renewed.status == 200
    assert _kid(renewed.json()["access_token"]) == key_id(NEW_SECRET.encode())


def test_step_one_adds_the_next_key_for_verification_only(
    client: ApiClient, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    from taskline.security.tokens import key_id

    _rotate(monkeypatch, TEST_JWT_SECRET, NEW_SECRET)
    token = client.login(client.sign_up())
    assert _kid(token) == key_id(TEST_JWT_SECRET.encode())  # still signed with the current key
    forged_by_next = _token_signed_with(NEW_SECRET, _claims_of(token))
    assert client.get("/tasks", token=forged_by_next).status == 200


def test_several_previous_keys_each_verify(
    client: ApiClient, monkeypatch: pytest.MonkeyPatch, reload_settings: None
) -> None:
    email = client.sign_up()
    claims = _claims_of(client.login(email))
    _rotate(monkeypatch, NEW_SECRET, f'["{OLDER_SECRET}", "{TEST_JWT_SECRET}"]')
    for secret in (NEW_SECRET, OLDER_SECRET, TEST_JWT_SECRET):
        token = _token_signed_with(secret, claims)
        assert client.get("/tasks", token=token).status == 200
    unknown = _token_signed_with("never-configured-key-" + "q" * 32, claims)
    assert client.get("/tasks", token=unknown).status == 401


def test_previous_keys_setting_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from taskline.settings import Settings

    def previous(value: str) -> list[str]:
        monkeypatch.setenv("JWT_PREVIOUS_SECRETS", value)
        return [secret.get_secret_value() for secret in Settings().jwt_previous_secrets]

    assert previous("") == []  # CloudFormation's default for the parameter
    assert previous(f" {OLDER_SECRET} , {NEW_SECRET} ") == [OLDER_SECRET, NEW_SECRET]
    assert previous(f'["{OLDER_SECRET}"]') == [OLDER_SECRET]
    with pytest.raises(ValidationError):
        previous("too-short")
    with pytest.raises(ValidationError):
        previous('["unterminated')


def test_tokens_without_a_session_claim_are_refused(client: ApiClient) -> None:
    claims = _claims_of(client.login(client.sign_up()))
    del claims["sid"]
    response = client.get("/tasks", token=_token_signed_with(TEST_JWT_SECRET, claims))
    assert response.status == 401
    claims["sid"] = "not-a-uuid"
    assert client.get("/tasks", token=_token_signed_with(TEST_JWT_SECRET, claims)).status == 401


def test_a_genuine_token_for_a_session_that_never_existed(client: ApiClient) -> None:
    claims = _claims_of(client.login(client.sign_up()))
    claims["sid"] = str(uuid.uuid4())
    token = _token_signed_with(TEST_JWT_SECRET, claims)
    assert client.get("/users/me", token=token).status == 401


def _claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    claims["iat"] = int(time.time())
    claims["exp"] = claims["iat"] + 600
    return claims


def _token_signed_with(secret: str, claims: dict[str, Any]) -> str:
    from taskline.security.tokens import key_id

    kid = key_id(secret.encode())
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})
